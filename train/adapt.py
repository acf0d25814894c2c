"""Fine-tuning a trained model on a lab's own labelled sections, into a run directory export reads.

    config.json      the recipe (FineTuneConfig)
    model.keras      the fine-tuned float model (the "full model")
    qat.h5           its QAT model, distilled from it (as in ``fit``)
    history.csv      float steps: loss (and held-out figures, for the record)
    qat_history.csv  QAT epochs
    metrics.json     per-section held-out figures: fine-tuned float and QAT, zero-shot int8
    card.json        the model card, with ``training.base_model`` and ``comparison``

Held-out sections: the last ``ceil(n / 5)`` of the n labelled sections, whole,
when n >= ``MIN_SECTIONS_FOR_HOLDOUT``. They choose the post-processing (the
fine-tuned and the zero-shot model each get their best from the same grid by
the same rule, so the comparison is like for like) and decide which model the
card recommends. They never steer the float fine-tuning, whose schedule is fixed; the
QAT distillation keeps the best of its three epochs by them, as ``make train`` does,
which moves the int8 model towards the float one, not towards them. With fewer
sections every one trains, the card says that nothing was measured, and the
post-processing is ``FALLBACK_POSTPROCESSING``, chosen while developing the
recipe (never on the user's sections).

The recipe (``FineTuneConfig``'s defaults) was chosen on fib-gala's *train*
volume only -- fine-tuned on sections 0, 6, 12, 18, section 24 held out,
measured on sections 30-49; the test volume was never looked at while
choosing: the shipped augmentation (elastic, the 8 rotations and flips,
contrast, brightness, gamma, noise), 96-px crops (a 100-px section fits),
1500 steps of Adam with a 100-step warm-up to 1e-3 and cosine decay to 0, BCE,
batch norm frozen at the shipped statistics, instance boundaries drawn 3 px
wide, and 0.5 px smoothing added to the post-processing grid. One seed per
variant: a 1-px target or trainable batch norm scored 0.004-0.008 lower in
V_rand there, a difference of the order of seed noise (docs/finetune-recipe.md).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from datetime import datetime, timezone
from pathlib import Path

from emseg_lite.runtime.core.card import (
    Comparison,
    LabelSource,
    ModelCard,
    ModelFile,
    PostProcessing,
    Scores,
    TensorSpec,
    Tiling,
    Training,
)
from emseg_lite.runtime.core.errors import InputError
from emseg_lite.runtime.core.files import file_sha256
from emseg_lite.runtime.pipelines.datasets import LabeledVolume, load_labeled
from emseg_lite.runtime.pipelines.evaluate import both_methods, score_volume
from emseg_lite.runtime.post.labels import LabelSpec

from . import losses, qat
from .base import Base, load_base
from .calibrate import HALO_TOLERANCE, SIGMAS, choose_postprocessing, effective_halo
from .config import FineTuneConfig
from .data import training_dataset
from .fit import SLICE_SIZE, history_rows, machine, versions
from .keras2 import keras
from .predict import predict_slice
from .validation import IsbiValidation, validate, write_metrics

log = logging.getLogger(__name__)
MIN_SECTIONS_FOR_HOLDOUT = 4
"""Hold out only when at least three sections remain to train on."""
MIN_CROP = 64
"""Smallest training crop, and so smallest section: below it the 16x down-sampled
bottleneck sees 4 x 4 pixels and a crop holds barely one cell."""
SMOOTHING_SIGMAS = (0.5, *SIGMAS)
"""The calibration grid's smoothing plus 0.5 px: a lab's membranes may be only 1-3 px wide
(fib-gala), where a 1-px Gaussian already merges neighbours (held-out choice with 0.5 in the
grid: V_rand 0.896 vs 0.892 on fib-gala train sections 30-49 while developing)."""
FALLBACK_POSTPROCESSING = PostProcessing("watershed", threshold=0.3, seed_threshold=0.2, min_seed_area=1,
                                         smoothing_sigma=0.5, levels=2)
"""Used when no section can be held out: what the held-out section chose while developing
the recipe (fib-gala train section 24, model fine-tuned on sections 0, 6, 12, 18; it
scored V_rand 0.896 / V_info 0.924 on sections 30-49), never chosen on a user's sections."""


@dataclasses.dataclass
class Sections:
    """The labelled sections of a fine-tuning, split by section."""

    train: LabeledVolume
    val: LabeledVolume | None
    train_ids: list[int]
    val_ids: list[int]
    crop: int


def load_sections(config: FineTuneConfig, align: int) -> Sections:
    """Read and check the user's sections, choose the crop and the hold-out. Raises InputError."""
    try:
        spec = LabelSpec(config.label_kind, config.membrane_value, config.boundary_width)
    except ValueError as exc:
        raise InputError(config.labels, str(exc)) from None
    volume = load_labeled(config.images, config.labels, spec=spec)
    ids = list(range(len(volume.names))) if config.sections is None else list(config.sections)
    missing = [i for i in ids if not 0 <= i < len(volume.names)]
    if missing:
        raise InputError(config.images, f"has {len(volume.names)} sections; section {missing[0]} does not exist")
    volume = volume.select(ids)
    height, width = volume.images.shape[1:]
    crop = min(config.crop, min(height, width) // align * align)
    if crop < MIN_CROP:
        raise InputError(config.images, f"sections are {width} x {height} px; fine-tuning needs at least "
                                        f"{MIN_CROP} x {MIN_CROP}")
    n = len(ids)
    held = math.ceil(n / 5) if n >= MIN_SECTIONS_FOR_HOLDOUT else 0
    train_pos, val_pos = list(range(n - held)), list(range(n - held, n))
    val = volume.select(val_pos) if held else None
    return Sections(volume.select(train_pos), val, [ids[i] for i in train_pos], [ids[i] for i in val_pos], crop)


def finetune(config: FineTuneConfig, out: Path, command: str, verbose: int = 1) -> ModelCard:
    """Check every input, then fine-tune, QAT, calibrate and compare; write the run directory ``out``."""
    started = time.monotonic()
    base = load_base(config.base)
    align = base.card.tiling.align
    sections = load_sections(config, align)
    config = dataclasses.replace(config, crop=sections.crop)
    if sections.val is None:
        log.warning("only %d labelled sections: none held out, so the fine-tuned model cannot be compared with "
                    "the zero-shot one; label at least %d sections to measure it", len(sections.train_ids),
                    MIN_SECTIONS_FOR_HOLDOUT)
    log.info("fine-tuning on sections %s, holding out %s", sections.train_ids, sections.val_ids or "none")

    out.mkdir(parents=True, exist_ok=True)
    config.save(out / "config.json")
    keras.utils.set_random_seed(config.seed)
    spec = base.card.normalization
    exact_halo = math.ceil(base.card.architecture.receptive_field_radius / align) * align
    validation = IsbiValidation(sections.val, spec, exact_halo, align, base.card.postprocessing) if sections.val else None
    model = _fine_tune_float(base, sections, config, out, validation, verbose)
    _save_without_optimizer(model, out / "model.keras")

    dataset = training_dataset(sections.train, config, spec, config.seed + 1)
    qat_model = qat.fine_tune(model, dataset, config, validation, out, verbose)

    reports, comparison, post = {}, None, FALLBACK_POSTPROCESSING
    if sections.val is not None:
        float_maps = [predict_slice(model, image, spec, exact_halo, align) for image in sections.val.images]
        post = choose_postprocessing(float_maps, sections.val, SMOOTHING_SIGMAS)
        reports = {"full_model": score_volume(float_maps, sections.val, both_methods(post)),
                   "qat_model": validate(qat_model, sections.val, spec, exact_halo, align, post)}
        zero_shot = zero_shot_scores(base, sections.val)
        comparison = compare(reports["qat_model"].mean(post.method), zero_shot, sections.val_ids,
                             sections.val.metric)
        write_metrics(out / "metrics.json", reports, post, zero_shot_int8=dataclasses.asdict(zero_shot))
    halo_images = (sections.val or sections.train).images[:2]
    halo, halo_error = effective_halo(model, halo_images, spec, exact_halo, align)
    tile = math.ceil((SLICE_SIZE + 2 * halo) / align) * align

    card = dataclasses.replace(
        base.card,
        variant="keras",
        model=ModelFile("model.keras", (out / "model.keras").stat().st_size, file_sha256(out / "model.keras")),
        input=TensorSpec([1, tile, tile, 1], "float32"),
        output=TensorSpec([1, tile, tile, 1], "float32"),
        postprocessing=post,
        tiling=Tiling(tile, halo, align, HALO_TOLERANCE, halo_error),
        training=Training(
            data=config.images, train_sections=sections.train_ids, val_sections=sections.val_ids, command=command,
            date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            duration_s=round(time.monotonic() - started, 1), epochs=history_rows(out / "history.csv"),
            qat_epochs=history_rows(out / "qat_history.csv"), seed=config.seed, loss=config.loss, machine=machine(),
            labels=LabelSource(config.images, config.labels, sections.train.kind, config.membrane_value,
                               config.boundary_width),
            pixel_size_nm=config.pixel_size_nm,
            base_model=ModelFile(str(base.path), base.card.model.size_bytes, base.card.model.sha256),
        ),
        validation={name: report.evaluation() for name, report in reports.items()},
        agreement=None,
        versions=versions(),
        full_model=None,
        comparison=comparison or unmeasured(),
    )
    card.save(out / "card.json")
    return card


def _fine_tune_float(base: Base, sections: Sections, config: FineTuneConfig, out: Path,
                     validation: IsbiValidation | None, verbose: int) -> keras.Model:
    """A fixed schedule from the base weights: linear warm-up to ``learning_rate``, cosine decay to 0."""
    model = keras.models.clone_model(base.model)
    model.set_weights(base.model.get_weights())
    if config.freeze_batch_norm:
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, max(1, config.steps - config.warmup_steps), warmup_target=config.learning_rate,
        warmup_steps=config.warmup_steps)
    model.compile(keras.optimizers.Adam(schedule), loss=losses.get(config.loss), jit_compile=True)
    record = [validation] if validation else []
    model.fit(training_dataset(sections.train, config, base.card.normalization, config.seed),
              steps_per_epoch=config.steps_per_epoch, epochs=max(1, config.steps // config.steps_per_epoch),
              verbose=verbose, callbacks=[*record, keras.callbacks.CSVLogger(str(out / "history.csv"))])
    return model


def _save_without_optimizer(model: keras.Model, path: Path) -> None:
    """The weights and graph only: Adam's moments would triple the file and nothing resumes from them."""
    bare = keras.models.clone_model(model)
    bare.set_weights(model.get_weights())
    bare.save(path)


def zero_shot_scores(base: Base, val: LabeledVolume) -> Scores:
    """The base int8 model on the held-out sections, with its best post-processing from the same grid."""
    from emseg_lite.runtime.pipelines.segmenter import Segmenter

    segmenter = Segmenter.load(base.int8_path, threads=None)
    maps = [segmenter.probabilities(image) for image in val.images]
    post = choose_postprocessing(maps, val, SMOOTHING_SIGMAS)
    return score_volume(maps, val, {"p": post}).mean("p")


def compare(fine_tuned: Scores, zero_shot: Scores, sections: list[int], metric: str) -> Comparison:
    """Recommend the fine-tuned model only if it scores higher (mean of V_rand and V_info) on held-out sections."""
    gain = _combined(fine_tuned) - _combined(zero_shot)
    figures = (f"V_rand {fine_tuned.v_rand:.4f} vs {zero_shot.v_rand:.4f}, V_info {fine_tuned.v_info:.4f} vs "
               f"{zero_shot.v_info:.4f} on held-out sections {sections} ({metric} metric; each model with its "
               "best post-processing there)")
    if gain > 0:
        return Comparison(sections, metric, "fine-tuned", f"better than the base model: {figures}", zero_shot, fine_tuned)
    return Comparison(sections, metric, "zero-shot", f"fine-tuning did not beat the base model, keep using it: {figures}",
                      zero_shot, fine_tuned)


def unmeasured() -> Comparison:
    return Comparison([], "none", "unmeasured",
                      f"fewer than {MIN_SECTIONS_FOR_HOLDOUT} labelled sections: none held out, so this model was "
                      "not compared with the base model; check its masks before relying on it")


def _combined(scores: Scores) -> float:
    return (scores.v_rand + scores.v_info) / 2
