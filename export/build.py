"""Export a run directory: every TFLite variant, each with its model card and measured figures.

Reads only what train wrote -- ``card.json``, ``model.keras``, ``qat.h5`` -- plus
the labelled data named in the card. Each variant is converted, written, loaded
back through the *runtime* (LiteRT, tiling, card checks) and scored on the
validation sections against the full Keras model, so the figures in its card
are what a user of that file will get.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import shutil
from pathlib import Path

from emseg_lite.runtime.backend import backend
from emseg_lite.runtime.card import ModelCard, ModelFile, card_path_for
from emseg_lite.runtime.datasets import load_labeled, locate
from emseg_lite.runtime.evaluate import both_methods, score_maps
from emseg_lite.runtime.files import atomic_write_bytes, file_sha256
from emseg_lite.runtime.interpreter import tensor_spec
from emseg_lite.runtime.segmenter import Segmenter
from emseg_lite.train import qat
from emseg_lite.train.keras2 import keras, tf
from emseg_lite.train.predict import predict_slice

from . import convert
from .agreement import agreement

log = logging.getLogger(__name__)
GATED = ("int8",)
"""Variants whose agreement below the floor fails the export (the one that ships)."""
REPRESENTATIVE_TILES = 48


class GateFailure(Exception):
    """A gated variant disagrees with the full model more than allowed."""


def export_run(run_dir: Path, out: Path, floor: float, data: str | None = None,
               variants: tuple[str, ...] = convert.VARIANTS, threads: int = 2) -> list[ModelCard]:
    run_card = ModelCard.load(run_dir / "card.json")
    run_card.check_model_file(run_dir / run_card.model.file)
    float_model = keras.models.load_model(run_dir / run_card.model.file, compile=False)
    models = {"float32": float_model, "float16": float_model, "int8": qat.load(run_dir / "qat.h5"),
              "int8-ptq": float_model}
    training = run_card.training
    volume = load_labeled(*locate(data or training.data))
    val, train = volume.select(training.val_sections), volume.select(training.train_sections)

    tiling = run_card.tiling
    exact_halo = math.ceil(run_card.architecture.receptive_field_radius / tiling.align) * tiling.align
    full_maps = [predict_slice(float_model, image, run_card.normalization, exact_halo, tiling.align)
                 for image in val.images]
    posts = both_methods(run_card.postprocessing)
    full_report = score_maps(full_maps, val.membrane, val.names, posts)
    representative = convert.representative_tiles(train, run_card.normalization, tiling.tile, REPRESENTATIVE_TILES)

    out.mkdir(parents=True, exist_ok=True)
    cards = [_copy_full_model(run_dir, run_card, out)]
    for variant in variants:
        log.info("converting %s", variant)
        path = out / f"emseg-{variant}.tflite"
        model = models[variant]
        if variant.startswith("int8"):
            payload = convert.to_int8(model, tiling.tile, representative)
        else:
            payload = getattr(convert, f"to_{variant}")(model, tiling.tile)
        atomic_write_bytes(path, payload)
        card = _describe(run_card, variant, path)
        card.save(card_path_for(path))
        segmenter = Segmenter.load(path, threads=threads)
        maps = [segmenter.probabilities(image) for image in val.images]
        report = score_maps(maps, val.membrane, val.names, posts)
        method = run_card.postprocessing.method
        card = dataclasses.replace(
            card,
            validation={**run_card.validation, "full_model": full_report.evaluation(), "variant": report.evaluation()},
            agreement=agreement(maps, full_maps, run_card.postprocessing, report.mean(method).v_rand,
                                full_report.mean(method).v_rand, floor),
        )
        card.save(card_path_for(path))
        cards.append(card)
    failed = [c for c in cards if c.variant in GATED and c.agreement and not c.agreement.passed]
    if failed:
        raise GateFailure(
            "; ".join(f"{c.variant}: {100 * c.agreement.pixel_agreement:.2f}% pixel agreement with the full model, "
                      f"below the floor of {100 * floor:.2f}%" for c in failed)
        )
    return cards


def _describe(run_card: ModelCard, variant: str, path: Path) -> ModelCard:
    """The variant's card before measurement: file, tensors, versions."""
    interpreter = backend().interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    if variant.startswith("int8"):
        floats = convert.float_tensors(interpreter.get_tensor_details())
        if floats:
            raise GateFailure(f"{path}: int8 model still has float tensors: {', '.join(floats[:5])}")
    (inp,), (outp,) = interpreter.get_input_details(), interpreter.get_output_details()
    return dataclasses.replace(
        run_card,
        variant=variant,
        model=ModelFile(path.name, path.stat().st_size, file_sha256(path)),
        input=tensor_spec(inp),
        output=tensor_spec(outp),
        agreement=None,
        versions={**run_card.versions, "tflite_converter": tf.__version__,
                  "measured_with": f"{backend().name} {backend().version}"},
    )


def _copy_full_model(run_dir: Path, run_card: ModelCard, out: Path) -> ModelCard:
    """Keep the full Keras model beside its variants: the reference they are measured against."""
    target = out / "emseg-keras.keras"
    shutil.copyfile(run_dir / run_card.model.file, target)
    card = dataclasses.replace(run_card, model=ModelFile(target.name, target.stat().st_size, file_sha256(target)))
    card.save(card_path_for(target))
    return card
