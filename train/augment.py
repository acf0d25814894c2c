"""Random training samples: crop, elastic deformation, dihedral flips, intensity.

Plain numpy/scipy, so it is testable without TensorFlow and reproducible from a
seeded ``numpy.random.Generator``. Geometry is applied to image and label with
the same sampling coordinates (the label bilinearly, then re-thresholded), so
they stay aligned; intensity changes touch the image only.

Arrays: ``image`` float32 in [0, 1] (normalised slice), ``membrane`` float32
0/1 (1 = membrane).
"""
from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage as ndi

from .config import AugmentConfig


def elastic_field(rng: np.random.Generator, size: int, grid: int, sigma: float) -> np.ndarray:
    """(2, size, size) displacement in pixels: a ``grid`` x ``grid`` lattice of
    N(0, sigma) displacements, bicubically interpolated (as in the U-Net paper)."""
    coarse = rng.normal(0.0, sigma, size=(2, grid, grid))
    weights = _cubic_upsampling(size, grid)
    return (weights @ coarse @ weights.T).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _cubic_upsampling(size: int, grid: int) -> np.ndarray:
    """(size, grid) matrix W with W @ C @ W.T == ndimage.zoom(C, size / grid, order=3).

    Spline zoom is linear and separable, so zooming the unit vectors once gives
    its matrix; each field is then two small products instead of a spline fit
    (10x faster, and the data pipeline shares two cores with training).
    """
    return np.stack([ndi.zoom(e, size / grid, order=3, mode="nearest")[:size] for e in np.eye(grid)], axis=1)


def sample(image: np.ndarray, membrane: np.ndarray, rng: np.random.Generator, crop: int,
           config: AugmentConfig) -> tuple[np.ndarray, np.ndarray]:
    """One augmented (crop x crop) pair from a whole slice."""
    height, width = image.shape
    y0 = rng.integers(0, max(1, height - crop + 1))
    x0 = rng.integers(0, max(1, width - crop + 1))
    rows, cols = np.mgrid[y0 : y0 + crop, x0 : x0 + crop].astype(np.float32)
    if config.elastic_sigma > 0:
        dy, dx = elastic_field(rng, crop, config.elastic_grid, config.elastic_sigma)
        rows += dy
        cols += dx
    coords = np.stack([rows, cols])
    img = ndi.map_coordinates(image, coords, order=1, mode="reflect").astype(np.float32)
    lab = (ndi.map_coordinates(membrane, coords, order=1, mode="reflect") > 0.5).astype(np.float32)
    img, lab = dihedral(img, lab, int(rng.integers(8)))
    return intensity(img, rng, config), lab


def dihedral(image: np.ndarray, label: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k-th (0..7) of the 8 rotations/reflections of the square, on both arrays."""
    if k >= 4:
        image, label = image.T, label.T
    return np.rot90(image, k % 4).copy(), np.rot90(label, k % 4).copy()


def intensity(image: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Contrast, brightness, gamma and Gaussian noise; result clipped to [0, 1]."""
    contrast = rng.uniform(1 - config.contrast, 1 + config.contrast)
    brightness = rng.uniform(-config.brightness, config.brightness)
    out = np.clip((image - 0.5) * contrast + 0.5 + brightness, 0.0, 1.0)
    out = out ** np.exp(rng.uniform(-config.gamma, config.gamma))
    if config.noise_sigma > 0:
        out = out + rng.normal(0.0, rng.uniform(0, config.noise_sigma), size=out.shape)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def batches(images: np.ndarray, membranes: np.ndarray, crop: int, batch_size: int,
            config: AugmentConfig, seed: int):
    """Endless (batch, crop, crop, 1) float32 image/label batches from whole slices."""
    rng = np.random.default_rng(seed)
    while True:
        picks = rng.integers(0, len(images), size=batch_size)
        pairs = [sample(images[i], membranes[i], rng, crop, config) for i in picks]
        x = np.stack([p[0] for p in pairs])[..., np.newaxis]
        y = np.stack([p[1] for p in pairs])[..., np.newaxis]
        yield x, y
