"""The full Keras model's membrane map of one slice, computed in its own process.

The benchmarks time LiteRT; once TensorFlow has run in a process its thread
pools keep competing for the two cores and slowed the LiteRT figures by ~15 %
in our runs. So the reference maps come from a child process
(``python -m benchmarks.keras_reference MODEL SLICE OUT.npy``) and the Keras
latency benchmark runs last.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np


def full_model(model_path: Path):
    """(predict: slice -> map, card, exact halo) for a Keras model with its card beside it."""
    from emseg_lite.runtime.core.card import ModelCard, card_path_for
    from emseg_lite.train.keras2 import keras
    from emseg_lite.train.predict import predict_slice

    card = ModelCard.load(card_path_for(model_path))
    model = keras.models.load_model(model_path, compile=False)
    align = card.tiling.align
    halo = math.ceil(card.architecture.receptive_field_radius / align) * align
    return (lambda image: predict_slice(model, image, card.normalization, halo, align)), card, halo


def main() -> None:
    model_path, slice_path, out = map(Path, sys.argv[1:4])
    image = np.load(slice_path)
    predict, _, _ = full_model(model_path)
    np.save(out, predict(image))


if __name__ == "__main__":
    main()
