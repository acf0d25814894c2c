"""Export a run directory: every TFLite variant, each with its model card and measured figures.

Reads only what train wrote -- ``card.json``, ``model.keras``, ``qat.h5`` -- plus
the labelled data named in the card. Each variant is converted, written, loaded
back through the *runtime* (LiteRT, tiling, card checks) and scored on the
validation sections against the full Keras model, so the figures in its card
are what a user of that file will get. The full model is written beside the
variants (``emseg-keras.keras``, without optimizer state) and every variant's
card names it by sha256 (``full_model``): fine-tuning starts from it.

A fine-tuned run with too few sections to hold any out has no validation
sections: agreement is then measured on its training sections (it judges the
conversion, not the model) and the cards carry no held-out figures.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path

from emseg_lite.runtime.core.card import Comparison, ModelCard, ModelFile, Scores, Training, card_path_for
from emseg_lite.runtime.core.files import atomic_write_bytes, file_sha256
from emseg_lite.runtime.engine.backend import backend
from emseg_lite.runtime.engine.interpreter import tensor_spec
from emseg_lite.runtime.pipelines.datasets import LabeledVolume, load_labeled, locate
from emseg_lite.runtime.pipelines.evaluate import both_methods, score_volume
from emseg_lite.runtime.pipelines.segmenter import Segmenter
from emseg_lite.runtime.post.labels import LabelSpec
from emseg_lite.train import qat
from emseg_lite.train.keras2 import keras, tf
from emseg_lite.train.predict import predict_slice

from . import convert
from .agreement import agreement

log = logging.getLogger(__name__)
GATED = ("int8", "float16-2048")
"""Variants whose agreement below the floor fails the export: the CPU's default and the GPU's tile."""
REPRESENTATIVE_TILES = 48


class GateFailure(Exception):
    """A gated variant disagrees with the full model more than allowed."""


def export_run(run_dir: Path, out: Path, floor: float, data: str | None = None,
               variants: tuple[str, ...] = convert.VARIANTS, threads: int = 2) -> list[ModelCard]:
    run_card = ModelCard.load(run_dir / "card.json")
    run_card.check_model_file(run_dir / run_card.model.file)
    float_model = keras.models.load_model(run_dir / run_card.model.file, compile=False)
    models = {"float32": float_model, "float16": float_model, "float16-2048": float_model, "int8-ptq": float_model}
    if "int8" in variants:
        models["int8"] = qat.load(run_dir / "qat.h5")
    training = run_card.training
    volume = training_volume(training, data)
    train = volume.select(training.train_sections)
    held_out = bool(training.val_sections)
    val = volume.select(training.val_sections) if held_out else train

    tiling = run_card.tiling
    exact_halo = math.ceil(run_card.architecture.receptive_field_radius / tiling.align) * tiling.align
    full_maps = [predict_slice(float_model, image, run_card.normalization, exact_halo, tiling.align)
                 for image in val.images]
    posts = both_methods(run_card.postprocessing)
    full_report = score_volume(full_maps, val, posts)
    representative = convert.representative_tiles(train, run_card.normalization, tiling.tile, REPRESENTATIVE_TILES)

    out.mkdir(parents=True, exist_ok=True)
    full_card = _write_full_model(float_model, run_card, out)
    cards = [full_card]
    for variant in variants:
        log.info("converting %s", variant)
        path = out / f"emseg-{variant}.tflite"
        model = models[variant]
        tile = convert.tile_of(variant, tiling.tile)
        if variant.startswith("int8"):
            payload = convert.to_int8(model, tile, representative)
        else:
            payload = getattr(convert, f"to_{variant.split('-')[0]}")(model, tile)
        atomic_write_bytes(path, payload)
        card = dataclasses.replace(_describe(run_card, variant, path, tile), full_model=full_card.model)
        card.save(card_path_for(path))
        segmenter = Segmenter.load(path, threads=threads)
        maps = [segmenter.probabilities(image) for image in val.images]
        report = score_volume(maps, val, posts)
        method = run_card.postprocessing.method
        validation = ({**run_card.validation, "full_model": full_report.evaluation(), "variant": report.evaluation()}
                      if held_out else {})
        card = dataclasses.replace(
            card,
            validation=validation,
            agreement=agreement(maps, full_maps, run_card.postprocessing, report.mean(method).v_rand,
                                full_report.mean(method).v_rand, floor),
            comparison=_measured(run_card.comparison, report.mean(method)),
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


def _describe(run_card: ModelCard, variant: str, path: Path, tile: int) -> ModelCard:
    """The variant's card before measurement: file, tensors, tile, versions."""
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
        tiling=dataclasses.replace(run_card.tiling, tile=tile),
        architecture=dataclasses.replace(  # convolutions: work in proportion to pixels
            run_card.architecture,
            macs_per_tile=run_card.architecture.macs_per_tile * tile ** 2 // run_card.tiling.tile ** 2),
        agreement=None,
        versions={**run_card.versions, "tflite_converter": tf.__version__,
                  "measured_with": f"{backend().name} {backend().version}"},
    )


def training_volume(training: Training, data: str | None = None) -> LabeledVolume:
    """The labelled sections a run learnt from, read as the run read them (``data``: another data folder)."""
    source = training.labels
    if source is None or data is not None:
        return load_labeled(*locate(data or training.data), spec=_spec(source))
    return load_labeled(source.images, source.labels, spec=_spec(source))


def _spec(source) -> LabelSpec | None:
    return None if source is None else LabelSpec(source.kind, source.membrane_value, source.boundary_width)


def _measured(comparison: Comparison | None, variant: Scores) -> Comparison | None:
    """A fine-tuned run's comparison with the zero-shot model, re-judged with this variant's own figures."""
    if comparison is None or comparison.zero_shot is None:
        return comparison
    from emseg_lite.train.adapt import compare

    return compare(variant, comparison.zero_shot, comparison.sections, comparison.metric)


def _write_full_model(model: keras.Model, run_card: ModelCard, out: Path) -> ModelCard:
    """The full Keras model beside its variants (loaded without compiling, so saved without optimizer
    state): the reference they are measured against, and where fine-tuning starts."""
    target = out / "emseg-keras.keras"
    model.save(target)
    card = dataclasses.replace(run_card, model=ModelFile(target.name, target.stat().st_size, file_sha256(target)))
    card.save(card_path_for(target))
    return card
