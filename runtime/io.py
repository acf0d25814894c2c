"""Reading EM slices and writing masks, probability maps and overlays.

Every reader returns a ``Slices``: a (pages, height, width) array in the file's
own numeric type (uint8, uint16, float32, ...), one page per section. Plain
images are one page; multi-page TIFFs (ImageJ stacks, either byte order) are
many. RGB(A) is converted to gray and says so in ``notes``.

Anything unusable raises ``InputError`` with one line naming the file; outputs
are written atomically (see ``files.atomic_output``), so a failed write leaves
nothing behind.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import InputError, OutputError
from .files import atomic_output

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
TIFF_SUFFIXES = (".tif", ".tiff")
DEFAULT_MAX_PIXELS = 640_000_000
"""Largest slice (pixels per page) read without ``max_pixels`` being raised:
room for 25000 x 25000, far below what a tiny compressed 'decompression bomb'
would claim to be."""

_SUPPORTED_KINDS = "biuf"
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass
class Slices:
    """Sections of one input file: ``pages`` is (n, height, width), file dtype."""

    path: Path
    pages: np.ndarray
    is_stack: bool
    notes: list[str] = field(default_factory=list)


def read_slices(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Slices:
    """Read a PNG, JPEG or TIFF (8/16-bit, float, any byte order, multi-page)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file")
    if path.is_dir():
        raise InputError(path, "is a directory, not an image")
    if path.suffix.lower() in TIFF_SUFFIXES:
        return _read_tiff(path, max_pixels)
    return _read_pillow(path, max_pixels)


def _read_tiff(path: Path, max_pixels: int) -> Slices:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise InputError(path, "not a readable TIFF (no image data in it)")
            series = tif.series[0]
            axes, shape = series.axes, series.shape
            if 0 in shape:
                raise InputError(path, f"image is empty (shape {shape})")
            _check_size(path, _plane_shape(path, axes, shape), max_pixels)
            data = series.asarray()
    except InputError:
        raise
    except tifffile.TiffFileError as exc:
        raise InputError(path, f"not a readable TIFF ({exc})") from None
    except (ValueError, OSError, EOFError, IndexError, KeyError) as exc:
        raise InputError(path, f"truncated or corrupt TIFF ({type(exc).__name__}: {exc})") from None
    notes: list[str] = []
    kept = [(a, n) for a, n in zip(axes, shape) if n != 1 or a in "YX"]
    data = data.reshape([n for _, n in kept])
    kept_axes = "".join(a for a, _ in kept)
    if kept_axes.endswith("S"):
        data = _to_gray(path, data, notes)
        kept_axes = kept_axes[:-1]
    if kept_axes == "YX":
        data = data[np.newaxis]
    elif len(kept_axes) != 3 or not kept_axes.endswith("YX"):
        raise InputError(path, f"unsupported TIFF layout (axes {axes}, shape {shape}); expected one section per page")
    return Slices(path, _check_dtype(path, data), is_stack=data.shape[0] > 1, notes=notes)


def _plane_shape(path: Path, axes: str, shape: tuple[int, ...]) -> tuple[int, int]:
    if "Y" not in axes or "X" not in axes:
        raise InputError(path, f"unsupported TIFF layout (axes {axes})")
    return shape[axes.index("Y")], shape[axes.index("X")]


def _read_pillow(path: Path, max_pixels: int) -> Slices:
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                im = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = limit
        with im:
            _check_size(path, (im.height, im.width), max_pixels)
            im.load()
            data = _pillow_array(path, im, notes)
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError(path, "not an image emseg-lite can read (PNG, JPEG or TIFF)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(path, f"truncated or corrupt image ({exc})") from None
    return Slices(path, _check_dtype(path, data)[np.newaxis], is_stack=False, notes=notes)


def _pillow_array(path: Path, im: Image.Image, notes: list[str]) -> np.ndarray:
    if im.mode == "1":
        return np.asarray(im, dtype=np.uint8) * np.uint8(255)
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGB", "RGBA", "LA"):
        return _to_gray(path, np.asarray(im), notes)
    if im.mode in ("L", "I", "F") or im.mode.startswith("I;16"):
        return np.asarray(im)
    raise InputError(path, f"unsupported image mode {im.mode}")


def _to_gray(path: Path, data: np.ndarray, notes: list[str]) -> np.ndarray:
    """RGB(A) -> gray with ITU-R 601 luma; a gray+alpha image keeps its gray."""
    channels = data.shape[-1]
    if channels == 2:
        notes.append("gray+alpha: alpha ignored")
        return data[..., 0]
    if channels not in (3, 4):
        raise InputError(path, f"unsupported number of channels ({channels}); expected gray, RGB or RGBA")
    notes.append("RGB converted to gray" + (" (alpha ignored)" if channels == 4 else ""))
    gray = data[..., :3].astype(np.float32) @ _LUMA
    if data.dtype.kind in "ui":
        return np.round(gray).astype(data.dtype)
    return gray


def _check_size(path: Path, plane: tuple[int, int], max_pixels: int) -> None:
    height, width = plane
    if height == 0 or width == 0:
        raise InputError(path, f"image is empty ({width} x {height} pixels)")
    if height * width > max_pixels:
        raise InputError(
            path,
            f"image claims {width} x {height} = {height * width:,} pixels, above the limit of "
            f"{max_pixels:,} (a decompression bomb?); raise it with --max-pixels if the file is genuine",
        )


def _check_dtype(path: Path, data: np.ndarray) -> np.ndarray:
    if data.dtype.kind not in _SUPPORTED_KINDS:
        raise InputError(path, f"unsupported pixel type {data.dtype}; expected integer or float gray values")
    if data.dtype.kind == "b":
        return data.astype(np.uint8) * np.uint8(255)
    return data


def write_mask(path: Path, mask: np.ndarray, as_stack: bool) -> None:
    """Write a (pages, h, w) uint8 mask: PNG for one section, ImageJ TIFF stack otherwise."""
    if as_stack:
        _write_tiff(path, mask)
    else:
        _write_png(path, mask[0])


def write_probabilities(path: Path, probabilities: np.ndarray) -> None:
    """Write (pages, h, w) float32 membrane probabilities in [0, 1] as a float TIFF."""
    _write_tiff(path, probabilities.astype(np.float32, copy=False))


def write_overlay(path: Path, gray01: np.ndarray, membrane: np.ndarray, as_stack: bool) -> None:
    """Write the slice (float [0, 1]) with membrane pixels drawn in magenta, for a quick look."""
    rgb = np.repeat((gray01 * 255).astype(np.uint8)[..., np.newaxis], 3, axis=-1)
    rgb[membrane] = (255, 0, 255)
    if as_stack:
        _write_tiff(path, rgb, rgb=True)
    else:
        _write_png(path, rgb[0])


def _write_png(path: Path, image: np.ndarray) -> None:
    try:
        with atomic_output(path) as tmp:
            Image.fromarray(image).save(tmp, format="PNG")
    except OSError as exc:
        raise OutputError(path, f"cannot write ({exc.strerror or exc})") from None


def _write_tiff(path: Path, pages: np.ndarray, rgb: bool = False) -> None:
    import tifffile

    try:
        with atomic_output(path) as tmp:
            tifffile.imwrite(tmp, pages, imagej=True, metadata={"axes": "ZYXS" if rgb else "ZYX"})
    except OSError as exc:
        raise OutputError(path, f"cannot write ({exc.strerror or exc})") from None
