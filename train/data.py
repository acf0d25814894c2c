"""Training data: the labelled volume, its split by section, and the tf.data stream.

The split is by section index, never by pixel: neighbouring sections are
strongly correlated, so the last ``val_sections`` sections (ISBI: 25-29) are
held out whole.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emseg_lite.runtime.core.card import Normalization
from emseg_lite.runtime.engine.intensity import intensity_range, normalize
from emseg_lite.runtime.pipelines.datasets import LabeledVolume, load_labeled, locate

from . import augment
from .config import TrainConfig
from .keras2 import tf


@dataclass
class Split:
    train: LabeledVolume
    val: LabeledVolume
    train_sections: list[int]
    val_sections: list[int]


def load_split(data: str, val_sections: int, membrane_value: int = 0) -> Split:
    volume = load_labeled(*locate(data), membrane_value=membrane_value)
    n = len(volume.names)
    if not 0 < val_sections < n:
        raise ValueError(f"cannot hold out {val_sections} of {n} sections for validation")
    train_idx, val_idx = list(range(n - val_sections)), list(range(n - val_sections, n))
    return Split(volume.select(train_idx), volume.select(val_idx), train_idx, val_idx)


def normalized(images: np.ndarray, spec: Normalization) -> np.ndarray:
    """(n, h, w) slices -> float32 [0, 1], each with its own percentiles (as the runtime does)."""
    return np.stack([normalize(image, *intensity_range(image, spec)) for image in images])


def training_dataset(volume: LabeledVolume, config: TrainConfig, spec: Normalization, seed: int) -> tf.data.Dataset:
    """Endless batches of augmented crops, reproducible from ``seed``."""
    images = normalized(volume.images, spec)
    membranes = volume.membrane.astype(np.float32)
    shape = (config.batch_size, config.crop, config.crop, 1)
    return tf.data.Dataset.from_generator(
        lambda: augment.batches(images, membranes, config.crop, config.batch_size, config.augment, seed),
        output_signature=(tf.TensorSpec(shape, tf.float32), tf.TensorSpec(shape, tf.float32)),
    ).prefetch(4)
