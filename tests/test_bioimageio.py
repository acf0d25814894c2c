"""The bioimage.io package that `make export` writes: generated from the card, gated on the ONNX
agreement, and accepted by `bioimageio test` for both weight formats in an environment of its own."""
import io
import json
import os
import subprocess
import zipfile

import numpy as np
import pytest
import yaml
from conftest import REPO, missing

from emseg_lite.runtime.core.card import ModelCard
from emseg_lite.runtime.formats.reader import read_slices

BIOIMAGEIO_VENV = REPO / os.environ.get("EMSEG_BIOIMAGEIO_VENV", ".venv-bioimageio")
WEIGHT_FORMATS = ("onnx", "tensorflow_saved_model_bundle")


@pytest.fixture(scope="session")
def bioimageio_cli():
    cli = BIOIMAGEIO_VENV / "bin" / "bioimageio"
    if not cli.exists():
        missing(f"{cli} not found: `make .venv-bioimageio/.installed` creates the bioimage.io test environment")
    return cli


@pytest.fixture(scope="session")
def package(quick_models):
    return quick_models / "emseg.bioimageio.zip"


def _read(package, name):
    with zipfile.ZipFile(package) as archive:
        return archive.read(name)


@pytest.mark.parametrize("weight_format", WEIGHT_FORMATS)
def test_bioimageio_test_passes(package, bioimageio_cli, weight_format, tmp_path):
    summary = tmp_path / "summary.json"
    # The tests import train/keras2, which sets TF_USE_LEGACY_KERAS in this process; the zoo's
    # environment must not inherit it (TFSMLayer exists only in Keras 3).
    env = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "PYTHONPATH")}
    result = subprocess.run([str(bioimageio_cli), "test", str(package), "--weight-format", weight_format,
                             "--summary", str(summary)], env=env, cwd=tmp_path, capture_output=True, text=True)
    report = json.loads(summary.read_text())
    problems = [f"{d['name']}: {[e['msg'][:300] for e in d['errors']]}" for d in report["details"] if d["errors"]]
    assert result.returncode == 0 and report["status"] == "passed", problems or result.stderr[-2000:]
    ran = [d["name"] for d in report["details"] if d["status"] == "passed"]
    assert f"Reproduce test outputs from test inputs ({weight_format})" in ran
    assert sum(f"Run {weight_format} inference for inputs with" in name for name in ran) >= 2, ran


def test_rdf_is_generated_from_the_card(package, quick_models, isbi):
    card = ModelCard.load(quick_models / "emseg-onnx.json")
    assert json.loads(_read(package, "emseg-onnx.json")) == card.to_dict()
    rdf = yaml.safe_load(_read(package, "rdf.yaml"))
    (inp,), (out,) = rdf["inputs"], rdf["outputs"]
    scale_range, clip = inp["preprocessing"][:2]
    assert scale_range["kwargs"] == {"axes": ["y", "x"], "min_percentile": card.normalization.low_percentile,
                                     "max_percentile": card.normalization.high_percentile}
    assert clip["kwargs"] == {"min": 0.0, "max": 1.0}
    (y,) = [a for a in inp["axes"] if a.get("id") == "y"]
    align, halo = card.tiling.align, card.tiling.halo
    assert y["size"]["step"] == align and y["size"]["min"] % align == 0
    assert 2 * halo < y["size"]["min"] <= 2 * halo + align
    assert all(a["halo"] == halo for a in out["axes"] if a["type"] == "space")
    assert rdf["weights"]["onnx"]["opset_version"] <= 18
    assert rdf["config"]["emseg_lite"]["postprocessing"]["threshold"] == card.postprocessing.threshold
    assert {c["doi"] for c in rdf["cite"]} >= {"10.1371/journal.pbio.1000502", "10.3389/fnana.2015.00142"}
    readme = _read(package, rdf["documentation"]).decode()
    assert "## Validation" in readme and f"{card.tiling.halo} px" in readme

    # The test input is the first held-out ISBI section, untouched.
    section = read_slices(isbi / "train" / "images" / f"{card.training.val_sections[0]}.png").pages[0]
    test_input = np.load(io.BytesIO(_read(package, inp["test_tensor"]["source"])))
    np.testing.assert_array_equal(test_input[0, :, :, 0], section)


def test_onnx_agreement_is_in_the_card_and_gated(quick_models):
    card = ModelCard.load(quick_models / "emseg-onnx.json")
    a = card.agreement
    assert card.variant == "onnx" and a.passed
    assert a.max_abs_diff <= a.max_abs_diff_limit <= 1e-4 and a.pixel_agreement >= a.floor
    assert card.versions["tf2onnx"] and card.versions["onnx_opset"] == "17"


def test_package_refuses_onnx_weights_that_disagree(quick_models, tmp_path, monkeypatch):
    from emseg_lite.export.bioimageio import package, weights
    from emseg_lite.export.build import GateFailure
    from emseg_lite.train.keras2 import keras

    convert = weights.to_onnx

    def broken(model):  # a copy with one convolution's weights perturbed goes to ONNX
        copy = keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
        layer = next(layer for layer in copy.layers if layer.name.startswith("dec0_conv"))
        kernel, *rest = layer.get_weights()
        layer.set_weights([kernel * 1.5, *rest])
        return convert(copy)

    monkeypatch.setattr(weights, "to_onnx", broken)
    with pytest.raises(GateFailure, match=r"onnx: largest probability difference"):
        package.build_package(quick_models / "emseg-keras.keras", tmp_path)
    assert not (tmp_path / "emseg.bioimageio.zip").exists()

