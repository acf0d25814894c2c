"""Intensity normalisation shared by training and inference.

The network sees float32 in [0, 1]: the slice's low and high percentiles (from
the model card) map to 0 and 1 and values beyond are clipped. Percentiles are
taken over the whole slice, never per tile, so every tile of a large slice is
normalised alike. For 8/16-bit slices they come from a histogram (exact, no copy
of the slice); for other dtypes from a regular subsample of at most
``MAX_SAMPLES`` pixels, which is what keeps a 20000 x 20000 float slice cheap.
"""
from __future__ import annotations

import numpy as np

from .card import Normalization

MAX_SAMPLES = 1 << 22
_HISTOGRAM_DTYPES = (np.uint8, np.uint16, np.int8, np.int16)


def intensity_range(image: np.ndarray, spec: Normalization) -> tuple[float, float]:
    """Return the (low, high) intensities of ``image`` that map to 0 and 1.

    Uses the 'lower' (nearest-rank) percentile definition on every path.
    """
    if spec.method != "percentile":
        raise ValueError(f"unknown normalisation method {spec.method!r}")
    qs = (spec.low_percentile, spec.high_percentile)
    if image.dtype.type in _HISTOGRAM_DTYPES:
        offset = int(np.iinfo(image.dtype).min)
        counts = np.bincount((image.ravel() if offset == 0 else image.ravel().astype(np.int32) - offset))
        cumulative = np.cumsum(counts)
        n = int(cumulative[-1])
        values = [int(np.searchsorted(cumulative, int(q / 100.0 * (n - 1)), side="right")) + offset for q in qs]
        return float(values[0]), float(values[1])
    flat = image.reshape(-1)
    step = max(1, flat.size // MAX_SAMPLES)
    sample = flat[::step].astype(np.float64)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(sample, qs, method="lower")
    return float(low), float(high)


def normalize(pixels: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map ``pixels`` to float32 [0, 1] with ``low`` -> 0 and ``high`` -> 1 (clipped).

    A flat slice (high <= low) maps to 0 everywhere rather than dividing by zero.
    """
    out = pixels.astype(np.float32)
    span = high - low
    if span <= 0:
        out.fill(0.0)
        return out
    out -= np.float32(low)
    out *= np.float32(1.0 / span)
    np.clip(out, 0.0, 1.0, out=out)
    np.nan_to_num(out, copy=False, nan=0.0)
    return out
