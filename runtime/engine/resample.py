"""Running the network at the model's pixel size on a section of another.

A network learns membranes at the thickness its training sections showed them
(ISBI 2012: 4 nm pixels). When an input's pixel size is known and differs, the
section can be resampled to the model's pixel size for the network, and the
membrane probability resampled back onto the input's own grid, where the
post-processing runs and the outputs are written: the mask still lines up with
the user's image pixel for pixel.

Both directions are one separable triangle filter in *section* coordinates:
output pixel ``j`` of an axis of ``n_out`` pixels sits at input position
``(j + 0.5) * n_in / n_out - 0.5``; the filter is linear interpolation when it
enlarges, and widens to the step when it shrinks, so a coarser grid averages
what it covers instead of aliasing. Edges repeat the edge pixel. As every weight
depends only on a pixel's place in the whole section, a block computed from its
own window equals the same pixels of a whole-section pass (``blockwise``);
the network's windows keep their origins on the pooling grid (``align``) for
the same reason. Pillow's resize computes its weights relative to the box it is
given and cuts the filter at the array's edge, so one pixel could come out
differently in two blocks; scipy is not a runtime dependency. In numpy the filter
took about 0.4 s of the 1.35 s a 2048 x 2048 section needs at twice the model's
pixel size (docs/pixel-size.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core.geometry import Region


@dataclass(frozen=True)
class Axis:
    """One axis of the section: ``size`` pixels at the input's pixel size, ``model_size`` at the model's."""

    size: int
    model_size: int

    def taps(self, start: int, stop: int, to_model: bool) -> tuple[np.ndarray, np.ndarray]:
        """Source indices and weights, each (stop - start, taps), of target pixels
        ``start:stop`` (model pixels when ``to_model``, else input pixels)."""
        n_in, n_out = (self.size, self.model_size) if to_model else (self.model_size, self.size)
        step = n_in / n_out
        radius = max(1.0, step)
        centre = (np.arange(start, stop, dtype=np.float64) + 0.5) * step - 0.5
        first = np.floor(centre - radius).astype(np.int64) + 1
        offsets = np.arange(math.ceil(2 * radius))  # the pixels strictly within ``radius`` of the centre
        index = first[:, np.newaxis] + offsets
        weight = np.maximum(0.0, 1.0 - np.abs(index - centre[:, np.newaxis]) / radius)
        weight /= weight.sum(axis=1, keepdims=True)
        return np.clip(index, 0, n_in - 1), weight.astype(np.float32)

    def source_span(self, start: int, stop: int, to_model: bool) -> tuple[int, int]:
        """The source pixels (half-open) that target pixels ``start:stop`` read."""
        index, weight = self.taps(start, stop, to_model)
        used = index[weight > 0]
        return int(used.min()), int(used.max()) + 1


@dataclass(frozen=True)
class Resampling:
    """A section's two grids: its own and the model-pixel-size one the network runs on."""

    rows: Axis
    cols: Axis

    @classmethod
    def of(cls, height: int, width: int, scale: float | None) -> "Resampling | None":
        """The grids of a ``height`` x ``width`` section at ``scale`` model pixels per input
        pixel (the input's pixel size over the model's); None when there is nothing to
        resample (no scale, or one that leaves the grid as it is)."""
        if scale is None:
            return None
        if not scale > 0:
            raise ValueError(f"resampling scale must be positive, got {scale}")
        resampling = cls(Axis(height, max(1, round(height * scale))), Axis(width, max(1, round(width * scale))))
        return None if resampling.model_shape == (height, width) else resampling

    @property
    def model_shape(self) -> tuple[int, int]:
        return self.rows.model_size, self.cols.model_size

    def model_region(self, region: Region, align: int) -> Region:
        """The model-grid box that resampling back onto ``region`` reads, its origin
        moved down onto the network's pooling grid."""
        y0, y1 = self.rows.source_span(region.y0, region.y1, to_model=False)
        x0, x1 = self.cols.source_span(region.x0, region.x1, to_model=False)
        return Region(y0 // align * align, x0 // align * align, y1, x1)

    def input_box(self, model_box: Region, region: Region) -> Region:
        """The input pixels that resampling ``model_box`` reads, grown to cover ``region``."""
        y0, y1 = self.rows.source_span(model_box.y0, model_box.y1, to_model=True)
        x0, x1 = self.cols.source_span(model_box.x0, model_box.x1, to_model=True)
        return Region(min(y0, region.y0), min(x0, region.x0), max(y1, region.y1), max(x1, region.x1))

    def to_model(self, pixels: np.ndarray, box: Region, model_box: Region) -> np.ndarray:
        """float32 model-grid pixels of ``model_box`` from input ``pixels`` holding ``box``."""
        return _resample(pixels, box, model_box, self.rows, self.cols, to_model=True)

    def to_input(self, values: np.ndarray, model_box: Region, region: Region) -> np.ndarray:
        """float32 input-grid values of ``region`` from model-grid ``values`` holding ``model_box``."""
        return _resample(values, model_box, region, self.rows, self.cols, to_model=False)


def _resample(source: np.ndarray, held: Region, target: Region, rows: Axis, cols: Axis, to_model: bool) -> np.ndarray:
    """Along rows and along columns; the column pass runs on the transpose, so that both
    passes gather whole rows, and comes first when enlarging, while the array is small."""
    row_taps = rows.taps(target.y0, target.y1, to_model)
    col_taps = cols.taps(target.x0, target.x1, to_model)
    source = source.astype(np.float32, copy=False)
    if target.height * target.width > held.height * held.width:
        across = _pass(np.ascontiguousarray(source.T), held.x0, held.x1, col_taps)
        return _pass(np.ascontiguousarray(across.T), held.y0, held.y1, row_taps)
    down = _pass(source, held.y0, held.y1, row_taps)
    return np.ascontiguousarray(_pass(np.ascontiguousarray(down.T), held.x0, held.x1, col_taps).T)


def _pass(source: np.ndarray, start: int, stop: int, taps: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Each output row a weighted sum of a few rows of ``source`` (which holds rows ``start:stop``)."""
    index, weight = taps
    index = np.clip(index, start, stop - 1) - start  # only zero-weight taps reach beyond what is held
    out = np.empty((index.shape[0], source.shape[1]), dtype=np.float32)
    gathered = np.empty_like(out)
    for tap in range(index.shape[1]):
        np.take(source, index[:, tap], axis=0, out=gathered)
        gathered *= weight[:, tap, np.newaxis]
        if tap:
            out += gathered
        else:
            out, gathered = gathered, out
    return out
