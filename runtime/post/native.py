"""The compiled region operations (``_regions.c``), with ``regions``' signatures.

``pip install`` builds ``_regions.c`` when a C compiler is present; the
extension is optional, so an install without one still works and the watershed
falls back to ``regions`` (numpy), with identical results, about ten times more
slowly. ``emseg-lite info`` says which one runs.

The library is loaded with ctypes rather than imported as a Python extension:
it has no Python API to maintain, and ctypes releases the GIL for each call, so
post-processing in one thread runs beside the interpreter in another.
"""
from __future__ import annotations

import ctypes
import functools
import importlib.util
import logging
import threading

import numpy as np

from .regions import gaussian_kernel

log = logging.getLogger(__name__)

_MODULE = "emseg_lite.runtime.post._regions"
_MAX_PIXELS = 1 << 32
"""Raster indices travel in 32 bits inside the nearest fill: blocks stay below 4 G pixels."""

_i64 = ctypes.c_int64
_ptr = ctypes.c_void_p


@functools.lru_cache(maxsize=1)
def library() -> ctypes.CDLL | None:
    """The compiled kernels, or None when this installation has none."""
    spec = importlib.util.find_spec(_MODULE)
    if spec is None or not spec.origin:
        log.info("compiled region operations not built; the watershed runs in numpy")
        return None
    try:
        lib = ctypes.CDLL(spec.origin)
    except OSError as exc:
        log.warning("compiled region operations unusable (%s); the watershed runs in numpy", exc)
        return None
    lib.emseg_gaussian.argtypes = [_ptr, _i64, _ptr, _i64, _i64, _ptr, _i64]
    lib.emseg_gaussian.restype = ctypes.c_int
    lib.emseg_label.argtypes = [_ptr, _ptr, _i64, _i64, _ptr]
    lib.emseg_label.restype = _i64
    lib.emseg_label_scratch.argtypes = [_i64, _i64]
    lib.emseg_label_scratch.restype = _i64
    lib.emseg_flood_levels.argtypes = [_ptr, _ptr, _ptr, _i64, _i64, _i64, _ptr]
    lib.emseg_flood_levels.restype = None
    lib.emseg_flood_scratch.argtypes = [_i64, _i64]
    lib.emseg_flood_scratch.restype = _i64
    lib.emseg_label_borders.argtypes = [_ptr, _ptr, _i64, _i64]
    lib.emseg_label_borders.restype = None
    return lib


def available() -> bool:
    return library() is not None


def _address(array: np.ndarray) -> int:
    return array.ctypes.data


_SCRATCH = threading.local()


def _scratch(nbytes: int) -> np.ndarray:
    """Working memory for one call, kept per thread and reused: a fresh allocation of
    this size would cost more in page faults than the kernels take to run."""
    buffer = getattr(_SCRATCH, "buffer", None)
    if buffer is None or buffer.size < nbytes:
        buffer = _SCRATCH.buffer = np.empty(nbytes, dtype=np.uint8)
    return buffer


def _checked(status: int, what: str) -> None:
    if status < 0:
        raise MemoryError(f"out of memory in the compiled {what}")


def _shape(array: np.ndarray) -> tuple[int, int]:
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {array.shape}")
    if array.size >= _MAX_PIXELS:
        raise ValueError(f"{array.shape} is too large for one block of the compiled region operations")
    return array.shape


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """As ``regions.gaussian_blur``. Reads a float32 image with contiguous rows in place
    (a piece of a window, say): copying it first cost as much as a tenth of the blur."""
    source = np.asarray(image, dtype=np.float32)
    if source.ndim != 2 or source.strides[1] != 4 or source.strides[0] % 4 or source.strides[0] < 4 * source.shape[1]:
        source = np.ascontiguousarray(source)
    height, width = _shape(source)
    kernel = gaussian_kernel(sigma)
    blurred = np.empty(source.shape, dtype=np.float32)
    _checked(library().emseg_gaussian(_address(source), source.strides[0] // 4, _address(blurred), height, width,
                                      _address(kernel), kernel.size // 2), "Gaussian")
    return blurred


def label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """As ``regions.label``."""
    source = np.ascontiguousarray(mask, dtype=bool)
    height, width = _shape(source)
    labels = np.empty(source.shape, dtype=np.int32)
    lib = library()
    scratch = _scratch(lib.emseg_label_scratch(height, width))
    count = lib.emseg_label(_address(source), _address(labels), height, width, _address(scratch))
    return labels, int(count)


def flood(labels: np.ndarray, relief: np.ndarray | None = None, level: float = np.inf) -> None:
    """As ``regions.flood``: in place."""
    flood_levels(labels, relief, [level])


def flood_levels(labels: np.ndarray, relief: np.ndarray | None, levels) -> None:
    """As ``regions.flood_levels``: in place."""
    height, width = _shape(labels)
    if labels.dtype != np.int32 or not labels.flags.c_contiguous:
        raise ValueError("flood needs a C-contiguous int32 label image")
    if relief is not None:
        relief = np.ascontiguousarray(relief, dtype=np.float32)
        if relief.shape != labels.shape:
            raise ValueError(f"relief {relief.shape} and labels {labels.shape} differ in shape")
    elif np.isfinite(levels).any():
        raise ValueError("flooding to a finite level needs a relief")
    levels = np.ascontiguousarray(levels, dtype=np.float32)
    lib = library()
    lib.emseg_flood_levels(_address(labels), None if relief is None else _address(relief), _address(levels),
                           levels.size, height, width, _address(_scratch(lib.emseg_flood_scratch(height, width))))


def fill_nearest(labels: np.ndarray) -> np.ndarray:
    """As ``regions.fill_nearest``."""
    filled = np.array(labels, dtype=np.int32, order="C")
    flood(filled)
    return filled


def label_borders(labels: np.ndarray) -> np.ndarray:
    """As ``regions.label_borders``."""
    source = np.ascontiguousarray(labels, dtype=np.int32)
    height, width = _shape(source)
    border = np.empty(source.shape, dtype=bool)
    library().emseg_label_borders(_address(source), _address(border), height, width)
    return border
