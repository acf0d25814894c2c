"""Tiling a slice of any size through a network with a fixed input size.

Picture the slice reflect-padded by ``halo`` on every side (and a little more
at the bottom/right to fill the last tile). Tiles of ``tile`` x ``tile`` pixels
start every ``core = tile - 2 * halo`` pixels of that padded picture; each tile's
central ``core`` x ``core`` block of output is kept. When ``halo`` covers the
network's receptive field and ``core`` is a multiple of the network's total
down-sampling (so pooling grids line up), the stitched result equals one pass of
the network over the whole padded picture -- which is what the tests check.

The padded picture is never built: each tile's pixels are gathered through
reflected indices. Tiles can cover just a region of the slice (a block's
window, see ``blocks``), gathering from an array that holds only the pixels
they ``reach``; so memory is a block, however large the slice.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ..core.geometry import Region


@dataclass(frozen=True)
class Tile:
    """One network input window (``rows`` x ``cols``, slice indices) and where its
    central output goes: ``y``, ``x`` relative to the region being tiled."""

    rows: np.ndarray
    cols: np.ndarray
    y: int
    x: int
    height: int
    width: int


@dataclass(frozen=True)
class TileGrid:
    tile: int
    halo: int
    align: int

    def __post_init__(self):
        if self.tile % self.align or self.core <= 0 or self.core % self.align:
            raise ValueError(
                f"tile {self.tile} with overlap {self.halo} does not fit a network that down-samples by "
                f"{self.align}: tile and tile - 2 x overlap must be positive multiples of {self.align}"
            )

    @property
    def core(self) -> int:
        return self.tile - 2 * self.halo

    def padded_shape(self, height: int, width: int) -> tuple[int, int]:
        """Shape of the reflect-padded picture the tiles cover (for whole-image reference passes)."""
        return (math.ceil(height / self.core) * self.core + 2 * self.halo,
                math.ceil(width / self.core) * self.core + 2 * self.halo)

    def count(self, height: int, width: int) -> int:
        return math.ceil(height / self.core) * math.ceil(width / self.core)

    def tiles(self, height: int, width: int, region: Region | None = None) -> Iterator[Tile]:
        """Tiles covering ``region`` (default: all) of a ``height`` x ``width`` slice.

        The region's origin must be a multiple of ``align`` for the result to
        equal a whole-slice pass (``blocks`` plans windows that way).
        """
        region = region or Region(0, 0, height, width)
        for y in range(region.y0, region.y1, self.core):
            rows = reflect_indices(y - self.halo, self.tile, height)
            for x in range(region.x0, region.x1, self.core):
                cols = reflect_indices(x - self.halo, self.tile, width)
                yield Tile(rows, cols, y - region.y0, x - region.x0,
                           min(self.core, region.y1 - y), min(self.core, region.x1 - x))

    def reach(self, height: int, width: int, region: Region) -> Region:
        """The pixels of the slice that the tiles of ``region`` read (a box)."""
        last_y = region.y0 + (region.height - 1) // self.core * self.core
        last_x = region.x0 + (region.width - 1) // self.core * self.core
        rows = np.concatenate([reflect_indices(region.y0 - self.halo, self.tile, height),
                               reflect_indices(last_y - self.halo, self.tile, height)])
        cols = np.concatenate([reflect_indices(region.x0 - self.halo, self.tile, width),
                               reflect_indices(last_x - self.halo, self.tile, width)])
        return Region(int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1)

    def crop(self, output: np.ndarray, tile: Tile) -> np.ndarray:
        """The part of a tile's network output that belongs to the slice."""
        return output[self.halo : self.halo + tile.height, self.halo : self.halo + tile.width]


def reflect_indices(start: int, length: int, size: int) -> np.ndarray:
    """Indices ``start .. start+length-1`` into an axis of ``size``, mirrored at the
    edges without repeating the edge pixel (numpy's 'reflect'), for any overshoot."""
    index = np.arange(start, start + length)
    if size == 1:
        return np.zeros(length, dtype=np.intp)
    period = 2 * (size - 1)
    index = np.mod(index, period)
    return np.where(index >= size, period - index, index).astype(np.intp)


def gather(pixels: np.ndarray, tile: Tile, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """One tile's input window out of ``pixels``, which hold the slice from row,
    column ``origin`` on (the whole slice by default).

    Most tiles of a big slice reflect nothing: they are a plain view, not a copy
    through index arrays (several ms per 1120-px tile)."""
    rows, cols = _as_slice(tile.rows - origin[0]), _as_slice(tile.cols - origin[1])
    if isinstance(rows, slice) and isinstance(cols, slice):
        return pixels[rows, cols]
    return pixels[np.ix_(tile.rows - origin[0], tile.cols - origin[1])]


def _as_slice(index: np.ndarray) -> slice | np.ndarray:
    """``index`` as a slice when it is a run of consecutive indices (no reflection)."""
    if int(index[-1]) - int(index[0]) == index.size - 1:
        return slice(int(index[0]), int(index[-1]) + 1)
    return index
