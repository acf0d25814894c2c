"""Whole-slice prediction with a Keras model: the 'full model' every variant is compared to.

The slice is normalised as the runtime does it and run as one tile big enough
for the whole slice plus ``halo`` of reflected context on every side. With
``halo`` at least the receptive field this is exactly what the runtime's tiling
reproduces; ``predict_tiled`` runs the runtime's tiling itself with the Keras
model, to measure how small a halo still agrees.
"""
from __future__ import annotations

import numpy as np

from emseg_lite.runtime.core.card import Normalization
from emseg_lite.runtime.engine.intensity import intensity_range, normalize
from emseg_lite.runtime.engine.tiling import TileGrid, gather

from .keras2 import keras


def predict_slice(model: keras.Model, image: np.ndarray, spec: Normalization, halo: int, align: int) -> np.ndarray:
    """(h, w) slice of any dtype -> (h, w) float32 membrane probability, in one pass."""
    height, width = image.shape
    size = -(-(max(height, width) + 2 * halo) // align) * align
    grid = TileGrid(size, halo, align)
    (tile,) = grid.tiles(height, width)
    window = gather(normalize(image, *intensity_range(image, spec)), tile)
    output = model(window[np.newaxis, :, :, np.newaxis], training=False).numpy()[0, :, :, 0]
    return grid.crop(output, tile)


def predict_tiled(model: keras.Model, image: np.ndarray, spec: Normalization, grid: TileGrid) -> np.ndarray:
    """The runtime's tiling, with the Keras model as the network."""
    height, width = image.shape
    normalized = normalize(image, *intensity_range(image, spec))
    tiles = list(grid.tiles(height, width))
    batch = np.stack([gather(normalized, t) for t in tiles])[..., np.newaxis]
    outputs = model.predict(batch, batch_size=8, verbose=0)[..., 0]
    result = np.empty((height, width), np.float32)
    for tile, output in zip(tiles, outputs):
        result[tile.y : tile.y + tile.height, tile.x : tile.x + tile.width] = grid.crop(output, tile)
    return result
