"""The model a fine-tuning starts from: the float Keras model of an exported set, checked against its TFLite siblings.

A ``.tflite`` file cannot be trained, so the shipped float weights travel with
the embedded models: ``runtime/models/emseg-keras.keras`` (the full model of
the run that made the embedded int8/float16/float32 files, without optimizer
state) and its card ``emseg-keras.json``. Every TFLite card of a set names the
Keras model it came from in ``full_model`` (file, size, sha256), so a set whose
files are not from one run is refused instead of silently mixed. Any exported
folder (``make export`` writes ``emseg-keras.keras`` beside the variants) can be
a base, so a fine-tuned model can be fine-tuned again.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from emseg_lite.runtime.core.card import ModelCard, card_path_for
from emseg_lite.runtime.core.errors import ModelError
from emseg_lite.runtime.engine.registry import EMBEDDED_DIR

from .keras2 import keras

KERAS_FILE = "emseg-keras.keras"
INT8_FILE = "emseg-int8.tflite"


@dataclass
class Base:
    """The starting float model, its card, and the int8 model of the same run (the zero-shot reference)."""

    model: keras.Model
    card: ModelCard
    path: Path
    int8_path: Path


def base_folder(folder: str | Path | None) -> Path:
    return EMBEDDED_DIR if folder is None else Path(folder)


def load_base(folder: str | Path | None = None) -> Base:
    """Load and check the base set in ``folder`` (default: the models shipped in the package)."""
    folder = base_folder(folder)
    path, int8_path = folder / KERAS_FILE, folder / INT8_FILE
    if not folder.is_dir():
        raise ModelError(folder, "no such model folder (expected emseg-keras.keras and emseg-int8.tflite in it)")
    for required in (path, int8_path):
        if not required.is_file():
            raise ModelError(required, "missing: a base model folder holds emseg-keras.keras and emseg-int8.tflite")
    card = ModelCard.load(card_path_for(path))
    card.check_model_file(path)
    int8_card = ModelCard.load(card_path_for(int8_path))
    int8_card.check_model_file(int8_path)
    check_same_run(path, card, int8_path, int8_card)
    try:
        model = keras.models.load_model(path, compile=False)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        raise ModelError(path, f"cannot read the Keras model ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    return Base(model, card, path, int8_path)


def check_same_run(path: Path, card: ModelCard, variant_path: Path, variant_card: ModelCard) -> None:
    """Refuse a variant whose card does not name this Keras file (by sha256) as its full model."""
    link = variant_card.full_model
    if link is None or link.sha256 != card.model.sha256:
        named = "names no full model" if link is None else f"names full model sha256 {link.sha256[:12]}..."
        raise ModelError(variant_path, f"not from the same run as {path.name}: its card {named}, "
                                       f"the Keras model is sha256 {card.model.sha256[:12]}...")
