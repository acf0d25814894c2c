"""Quantization-aware fine-tuning with tensorflow-model-optimization (default 8-bit scheme).

QAT inserts fake-quantisation into the trained float model (folding batch norm
into the convolutions) and fine-tunes briefly at a low learning rate, so the
weights settle where int8 rounding costs least.
"""
from __future__ import annotations

from pathlib import Path

from .keras2 import keras


def _tfmot():
    import tensorflow_model_optimization as tfmot

    return tfmot


def quantize(model: keras.Model) -> keras.Model:
    return _tfmot().quantization.keras.quantize_model(model)


def load(path: str | Path) -> keras.Model:
    """Load a saved QAT model (its layers are tfmot wrappers, so they need tfmot's scope)."""
    with _tfmot().quantization.keras.quantize_scope():
        return keras.models.load_model(path, compile=False)


def version() -> str:
    return _tfmot().__version__
