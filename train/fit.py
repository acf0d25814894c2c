"""One training run, start to finish, into a self-describing run directory.

    config.json      every hyper-parameter (TrainConfig)
    model.keras      best float model by validation V_rand (the "full model")
    saved_model/     the same as a TensorFlow SavedModel
    qat.h5           the QAT model, distilled from the float model (tfmot wrappers;
                     HDF5 because tf-keras cannot reload QAT models from .keras files)
    history.csv      float epochs: loss and ISBI validation figures
    qat_history.csv  QAT epochs, same columns
    metrics.json     per-slice validation figures of both models
    card.json        the model card (variant "keras") that export builds on

Phases: float training (XLA-compiled steps, ~30 % faster on CPU; cosine learning rate, best checkpoint and early stopping
on V_rand after watershed, a wall-clock budget), QAT fine-tuning, then the
validation choices (post-processing, halo) and the card.
"""
from __future__ import annotations

import logging
import math
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

from emseg_lite.runtime.core.card import (
    Architecture,
    MaskPolarity,
    ModelCard,
    ModelFile,
    Normalization,
    PostProcessing,
    TensorSpec,
    Tiling,
    Training,
)
from emseg_lite.runtime.core.files import file_sha256
from emseg_lite.runtime.pipelines.evaluate import both_methods, score_volume

from . import losses, qat
from .calibrate import HALO_TOLERANCE, choose_postprocessing, effective_halo
from .config import TrainConfig
from .data import load_split, training_dataset
from .keras2 import keras, tf
from .model import alignment, build_unet, count_macs, receptive_field_radius
from .predict import predict_slice
from .validation import IsbiValidation, callbacks, validate, write_metrics

log = logging.getLogger(__name__)
OUTPUT_MEANING = "membrane probability in [0, 1] (1 = membrane)"
NORMALIZATION = Normalization()
SLICE_SIZE = 512
"""ISBI section size: the default tile fits one such section plus its halo."""


def train(config: TrainConfig, out: Path, command: str, verbose: int = 1) -> ModelCard:
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / "config.json")
    keras.utils.set_random_seed(config.seed)
    split = load_split(config.data, config.val_sections, config.membrane_value)
    log.info("training on %d sections, validating on %d", len(split.train_sections), len(split.val_sections))

    model = build_unet(config.model)
    align = alignment(config.model)
    exact_halo = math.ceil(receptive_field_radius(model) / align) * align
    default_post = PostProcessing()
    validation = IsbiValidation(split.val, NORMALIZATION, exact_halo, align, default_post)
    dataset = training_dataset(split.train, config, NORMALIZATION, config.seed)
    loss = losses.get(config.loss)

    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, config.epochs * config.steps_per_epoch)
    model.compile(keras.optimizers.Adam(schedule), loss=loss, jit_compile=True)
    model.fit(dataset, steps_per_epoch=config.steps_per_epoch, epochs=config.epochs, verbose=verbose,
              callbacks=callbacks(validation, config.max_minutes, config.patience,
                                  str(out / "model.keras"), str(out / "history.csv")))
    model = keras.models.load_model(out / "model.keras", compile=False)
    epochs = history_rows(out / "history.csv")
    tf.saved_model.save(model, str(out / "saved_model"))

    qat_model = qat.fine_tune(model, dataset, config, validation, out, verbose)

    float_maps = [predict_slice(model, image, NORMALIZATION, exact_halo, align) for image in split.val.images]
    post = choose_postprocessing(float_maps, split.val)
    halo, halo_error = effective_halo(model, split.val.images[:2], NORMALIZATION, exact_halo, align)
    tile = math.ceil((SLICE_SIZE + 2 * halo) / align) * align
    reports = {"full_model": score_volume(float_maps, split.val, both_methods(post)),
               "qat_model": validate(qat_model, split.val, NORMALIZATION, exact_halo, align, post)}
    write_metrics(out / "metrics.json", reports, post)

    card = ModelCard(
        variant="keras",
        model=ModelFile("model.keras", (out / "model.keras").stat().st_size, file_sha256(out / "model.keras")),
        input=TensorSpec([1, tile, tile, 1], "float32"),
        output=TensorSpec([1, tile, tile, 1], "float32"),
        output_meaning=OUTPUT_MEANING,
        normalization=NORMALIZATION,
        mask=MaskPolarity(),
        postprocessing=post,
        tiling=Tiling(tile, halo, align, HALO_TOLERANCE, halo_error),
        architecture=Architecture(
            name=config.model.name, depth=config.model.depth, widths=list(config.model.widths),
            block=config.model.block, upsampling=config.model.upsampling, params=int(model.count_params()),
            macs_per_tile=count_macs(config.model, tile), receptive_field_radius=receptive_field_radius(model),
        ),
        training=Training(
            data=str(config.data), train_sections=split.train_sections, val_sections=split.val_sections,
            command=command, date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            duration_s=round(time.monotonic() - started, 1), epochs=epochs, qat_epochs=history_rows(out / "qat_history.csv"),
            seed=config.seed, loss=config.loss, machine=machine(), pixel_size_nm=config.pixel_size_nm,
        ),
        validation={name: report.evaluation() for name, report in reports.items()},
        versions=versions(),
    )
    card.save(out / "card.json")
    return card


def versions() -> dict[str, str]:
    from emseg_lite.runtime import __version__

    return {"emseg_lite": __version__, "tensorflow": tf.__version__, "tf_keras": keras.__version__,
            "tfmot": qat.version(), "python": platform.python_version()}


def machine() -> str:
    """'x86_64, 2 cores, AMD EPYC (AVX-512 VNNI)': training is deterministic on one CPU type only."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model, flags = platform.processor() or platform.system(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    simd = next((name for flag, name in (("amx_tile", "AMX"), ("avx512_vnni", "AVX-512 VNNI"), ("avx512f", "AVX-512"),
                                         ("avx2", "AVX2")) if flag in flags), None)
    return f"{platform.machine()}, {cores} cores, {model}" + (f" ({simd})" if simd else "")


def history_rows(csv_path: Path) -> int:
    return max(0, len(csv_path.read_text().splitlines()) - 1) if csv_path.exists() else 0
