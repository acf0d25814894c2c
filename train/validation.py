"""Per-epoch ISBI validation, and the callbacks that act on it.

The figures are computed by the runtime's own metrics on whole held-out
sections (not crops), with both plain thresholding and watershed, and added to
the epoch's Keras logs as ``val_*`` -- so checkpointing, early stopping and the
history CSV all see V_rand, not a loss proxy.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

from emseg_lite.runtime.core.card import Normalization, PostProcessing
from emseg_lite.runtime.pipelines.datasets import LabeledVolume
from emseg_lite.runtime.pipelines.evaluate import Report, both_methods, score_volume

from .keras2 import keras
from .predict import predict_slice

log = logging.getLogger(__name__)
MONITOR = "val_v_rand_ws"
"""Checkpoints and early stopping follow V_rand after watershed, the shipped post-processing."""


def write_metrics(path: Path, reports: dict[str, Report], post: PostProcessing, **extra: dict) -> None:
    """``metrics.json``: the chosen post-processing, ``extra`` figures, then each model's per-section report."""
    payload = {"postprocessing": dataclasses.asdict(post), **extra, **{k: r.to_dict() for k, r in reports.items()}}
    path.write_text(json.dumps(payload, indent=2) + "\n")


def validate(model: keras.Model, volume: LabeledVolume, spec: Normalization, halo: int, align: int,
             post: PostProcessing) -> Report:
    maps = [predict_slice(model, image, spec, halo, align) for image in volume.images]
    return score_volume(maps, volume, both_methods(post))


def as_logs(report: Report) -> dict[str, float]:
    plain, ws = report.mean("none"), report.mean("watershed")
    return {
        "val_pixel_error": plain.pixel_error, "val_dice": plain.membrane_dice,
        "val_v_rand": plain.v_rand, "val_v_info": plain.v_info,
        "val_v_rand_ws": ws.v_rand, "val_v_info_ws": ws.v_info,
    }


class IsbiValidation(keras.callbacks.Callback):
    def __init__(self, volume: LabeledVolume, spec: Normalization, halo: int, align: int, post: PostProcessing):
        super().__init__()
        self.args = (volume, spec, halo, align, post)

    def on_epoch_end(self, epoch, logs=None):
        figures = as_logs(validate(self.model, *self.args))
        if logs is not None:
            logs.update(figures)
        log.info("epoch %d: %s", epoch + 1, ", ".join(f"{k} {v:.4f}" for k, v in figures.items()))


class TimeBudget(keras.callbacks.Callback):
    """Stop after the epoch in which ``minutes`` have passed, so `make train` keeps its time promise."""

    def __init__(self, minutes: float):
        super().__init__()
        self.seconds = minutes * 60.0
        self.start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        if time.monotonic() - self.start > self.seconds:
            log.warning("time budget of %.0f min reached after epoch %d; stopping", self.seconds / 60, epoch + 1)
            self.model.stop_training = True


def callbacks(validation: IsbiValidation | None, minutes: float, patience: int, checkpoint: str, history: str,
              weights_only: bool = False) -> list[keras.callbacks.Callback]:
    """Order matters: validation must fill the logs before the others read them.

    Without validation (too few labelled sections to hold any out) there is
    nothing to choose an epoch by: the last one is kept and the history logs the loss.
    """
    if validation is None:
        return [keras.callbacks.CSVLogger(history)]
    return [
        validation,
        TimeBudget(minutes),
        keras.callbacks.ModelCheckpoint(checkpoint, monitor=MONITOR, mode="max", save_best_only=True,
                                        save_weights_only=weights_only, verbose=0),
        keras.callbacks.EarlyStopping(monitor=MONITOR, mode="max", patience=patience, restore_best_weights=True),
        keras.callbacks.CSVLogger(history),
    ]
