"""From membrane probability to membrane mask.

Two methods, chosen per model on validation and recorded in its card:

* ``none``: membrane where probability > threshold. Faithful to the network,
  but a faint gap in a membrane merges two neurites and thick membranes stay thick.
* ``watershed``: a seeded watershed of the (smoothed) probability map.
  Seeds are confidently-cell regions; they grow into the rest of the slice
  level by level of membrane probability, so a region can only spread where the
  map is low, and the borders between grown regions become closed 1-pixel
  membranes -- the form the ISBI V_rand / V_info figures reward.

The flooding is quantised: within one probability level every pixel joins its
nearest grown region (taxicab distance), which puts borders on the middle of a
membrane band even where the network saturates at 1.0. With one level this is
a seeded Voronoi split along the membranes; more levels follow the
probability relief more closely at ~2 ms per level (512 x 512). ``scipy.ndimage.
watershed_ift`` would be the textbook tool, but it hands the far slope of a
ridge to whichever basin reaches the crest first (scipy issue #10069), which
shifts every border to one side of its membrane.

The region operations run compiled (``native``, built from ``_regions.c`` at
install) where available, else in numpy (``regions``), with identical results:
no scikit-image and no scipy, whose import alone would cost a one-slice
``emseg-lite segment`` 0.2 s and 26 MB.
"""
from __future__ import annotations

from types import ModuleType

import numpy as np

from ..core.card import PostProcessing
from . import native, regions

METHODS = ("none", "watershed")


def region_ops() -> ModuleType:
    """The fastest implementation of the region operations in this installation."""
    return native if native.available() else regions


def membrane_mask(probability: np.ndarray, params: PostProcessing) -> np.ndarray:
    """(h, w) float membrane probability in [0, 1] -> (h, w) bool, True = membrane."""
    if params.method == "none":
        return probability > params.threshold
    if params.method == "watershed":
        return watershed_boundaries(probability, params)
    raise ValueError(f"unknown post-processing {params.method!r}; choose from {', '.join(METHODS)}")


def watershed_boundaries(probability: np.ndarray, params: PostProcessing, ops: ModuleType | None = None) -> np.ndarray:
    """Closed 1-pixel membranes between regions flooded from cell seeds (``ops``: the
    region operations to use, by default ``region_ops()``)."""
    ops = ops or region_ops()
    labels, count = watershed_labels(probability, params, ops)
    if not count:
        return probability > params.threshold
    return ops.label_borders(labels)


def watershed_labels(probability: np.ndarray, params: PostProcessing,
                     ops: ModuleType | None = None) -> tuple[np.ndarray, int]:
    """(int32 regions flooded from cell seeds, covering every pixel (all 0 when there is
    no seed); their count n).

    Regions are numbered 1..n in the raster order of their seeds' first pixels.
    """
    ops = ops or region_ops()
    relief = np.asarray(probability, dtype=np.float32)
    if params.smoothing_sigma > 0:
        relief = ops.gaussian_blur(relief, params.smoothing_sigma)
    labels, count = seeds(relief, params.seed_threshold, params.min_seed_area, ops)
    if count:
        levels = [*np.linspace(0.0, 1.0, params.levels, endpoint=False)[1:], np.inf]
        ops.flood_levels(labels, relief, levels)
    return labels, count


def seeds(relief: np.ndarray, threshold: float, min_area: int,
          ops: ModuleType = regions) -> tuple[np.ndarray, int]:
    """(int32 labels 1..n of the 4-connected regions below ``threshold`` with >= ``min_area``
    pixels, 0 elsewhere; n)."""
    labels, count = ops.label(relief < threshold)
    if count and min_area > 1:
        keep = np.bincount(labels.ravel()) >= min_area
        keep[0] = False
        labels = np.where(keep, np.cumsum(keep, dtype=np.int32), 0)[labels].astype(np.int32)
        count = int(keep.sum())
    return labels, count
