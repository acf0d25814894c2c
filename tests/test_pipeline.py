"""train -> export -> runtime on real ISBI data, with a --quick run (seconds of training).

The quick model is not a good model; these tests prove that every stage reads
what the previous one wrote, that each variant really runs in LiteRT, and that
the figures in the cards are measured.
"""
import csv
import dataclasses
import json
import math
import shutil

import numpy as np
import pytest

from emseg_lite.runtime.core.card import ModelCard
from emseg_lite.runtime.core.errors import ModelError
from emseg_lite.runtime.engine.backend import backend
from emseg_lite.runtime.formats.reader import read_slices
from emseg_lite.runtime.pipelines.datasets import load_labeled, locate
from emseg_lite.runtime.pipelines.segmenter import Segmenter
from emseg_lite.train.config import TrainConfig

VARIANTS = ("float32", "float16", "int8", "int8-ptq")


def test_quick_training_writes_a_self_describing_run(quick_run):
    from emseg_lite.train import qat
    from emseg_lite.train.keras2 import keras

    for name in ("config.json", "card.json", "model.keras", "qat.h5", "history.csv", "metrics.json"):
        assert (quick_run / name).is_file(), name
    assert (quick_run / "saved_model" / "saved_model.pb").is_file()
    TrainConfig.load(quick_run / "config.json")
    card = ModelCard.load(quick_run / "card.json")
    assert card.variant == "keras" and card.training.val_sections == [25, 26, 27, 28, 29]
    rows = list(csv.DictReader((quick_run / "history.csv").open()))
    assert len(rows) == card.training.epochs and {"loss", "val_v_rand_ws", "val_v_info"} <= set(rows[0])
    metrics = json.loads((quick_run / "metrics.json").read_text())
    assert len(metrics["full_model"]["watershed"]["slices"]) == 5
    model = keras.models.load_model(quick_run / "model.keras", compile=False)
    assert model.predict(np.zeros((1, 64, 64, 1), np.float32), verbose=0).shape == (1, 64, 64, 1)
    assert qat.load(quick_run / "qat.h5").predict(np.zeros((1, 64, 64, 1), np.float32), verbose=0).shape == (1, 64, 64, 1)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_runs_in_litert_on_a_real_slice(quick_models, test_slice, variant):
    assert backend().name == "ai-edge-litert"
    segmenter = Segmenter.load(quick_models / f"emseg-{variant}.tflite", threads=2)
    assert segmenter.card.variant == variant
    probability = segmenter.probabilities(read_slices(test_slice).pages[0])
    assert probability.shape == (512, 512) and probability.dtype == np.float32
    assert 0.0 <= probability.min() and probability.max() <= 1.0 and probability.std() > 0


@pytest.mark.parametrize("variant", ["int8", "int8-ptq"])
def test_int8_models_are_integer_end_to_end(quick_models, variant):
    interpreter = backend().interpreter(model_path=str(quick_models / f"emseg-{variant}.tflite"))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
    dtypes = {np.dtype(d["dtype"]).name for d in interpreter.get_tensor_details()}
    assert dtypes <= {"int8", "int32"}, f"non-integer tensors in {variant}: {dtypes}"
    card = ModelCard.load(quick_models / f"emseg-{variant}.json")
    assert card.input.scale == pytest.approx(inp["quantization_parameters"]["scales"][0])
    assert card.input.zero_point == inp["quantization_parameters"]["zero_points"][0]


def test_float16_stores_half_precision_weights(quick_models):
    interpreter = backend().interpreter(model_path=str(quick_models / "emseg-float16.tflite"))
    dtypes = {np.dtype(d["dtype"]).name for d in interpreter.get_tensor_details()}
    assert "float16" in dtypes
    sizes = {v: (quick_models / f"emseg-{v}.tflite").stat().st_size for v in ("float32", "float16")}
    assert sizes["float16"] < 0.6 * sizes["float32"]


def test_agreement_in_the_card_is_measured(quick_models, isbi):
    """Recompute the int8 card's agreement from the models themselves."""
    from emseg_lite.train.keras2 import keras
    from emseg_lite.train.predict import predict_slice

    card = ModelCard.load(quick_models / "emseg-int8.json")
    volume = load_labeled(*locate(isbi)).select(card.training.val_sections)
    full = keras.models.load_model(quick_models / "emseg-keras.keras", compile=False)
    align = card.tiling.align
    exact_halo = math.ceil(card.architecture.receptive_field_radius / align) * align
    segmenter = Segmenter.load(quick_models / "emseg-int8.tflite", threads=2)
    t = card.postprocessing.threshold
    full_masks = np.stack([predict_slice(full, im, card.normalization, exact_halo, align) > t for im in volume.images])
    int8_masks = np.stack([segmenter.probabilities(im) > t for im in volume.images])
    assert card.agreement.pixel_agreement == pytest.approx(np.mean(full_masks == int8_masks), abs=1e-9)


def test_tiled_prediction_equals_one_whole_pass(quick_models, vnc_tiff):
    """A 1024 x 1024 slice through 544-px tiles vs one 1152-px pass of the same network."""
    image = read_slices(vnc_tiff).pages[0]
    tiled = Segmenter.load(quick_models / "emseg-float32.tflite", threads=2)
    card = tiled.card
    exact = math.ceil(card.architecture.receptive_field_radius / card.tiling.align) * card.tiling.align
    whole = Segmenter.load(quick_models / "emseg-float32.tflite", threads=2, tile=1024 + 2 * exact, overlap=exact)
    exact_tiles = Segmenter.load(quick_models / "emseg-float32.tflite", threads=2, tile=3 * exact, overlap=exact)
    assert tiled.grid.count(1024, 1024) > 1 and whole.grid.count(1024, 1024) == 1
    reference = whole.probabilities(image)
    np.testing.assert_allclose(exact_tiles.probabilities(image), reference, atol=1e-4)
    assert np.abs(tiled.probabilities(image) - reference).max() <= card.tiling.halo_tolerance


def test_gate_refuses_a_broken_int8_model(quick_run, isbi, tmp_path):
    from emseg_lite.export.build import GateFailure, export_run
    from emseg_lite.train import qat

    broken_run = tmp_path / "broken"
    shutil.copytree(quick_run, broken_run)
    model = qat.load(broken_run / "qat.h5")
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 1, w.shape).astype(w.dtype) if w.ndim == 4 else w for w in model.get_weights()])
    model.save(broken_run / "qat.h5")
    with pytest.raises(GateFailure, match=r"int8: .*% pixel agreement with the full model, below the floor of 99.00%"):
        export_run(broken_run, tmp_path / "models", floor=0.99, data=str(isbi), variants=("int8",))


def test_card_that_does_not_match_its_model_is_refused(quick_models, tmp_path):
    for name in ("emseg-int8.tflite", "emseg-int8.json", "emseg-float32.tflite"):
        shutil.copy(quick_models / name, tmp_path / name)
    card = ModelCard.load(tmp_path / "emseg-int8.json")
    dataclasses.replace(card, input=dataclasses.replace(card.input, shape=[1, 64, 64, 1])).save(tmp_path / "emseg-int8.json")
    with pytest.raises(ModelError, match="card does not match the model: input is int8"):
        Segmenter.load(tmp_path / "emseg-int8.tflite")
    # The int8 card beside the float32 model: file size and checksum differ.
    shutil.copy(quick_models / "emseg-int8.json", tmp_path / "emseg-float32.json")
    with pytest.raises(ModelError, match="model file does not match its card"):
        Segmenter.load(tmp_path / "emseg-float32.tflite")
