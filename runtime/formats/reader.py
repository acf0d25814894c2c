"""Opening image files as sections, and finding the images in a folder.

``open_section`` picks the reader from the suffix: TIFF (``tiff``, region by
region wherever the file allows it), MRC (``mrc``, needs the ``formats``
extra), else Pillow (PNG, JPEG), decoded whole and refused beyond
``section.WHOLE_DECODE_BYTES``. The TIFF and MRC readers are imported on first
use so that a PNG costs neither tifffile's nor mrcfile's import. A path that is
not a readable regular file (a FIFO, a folder, a symlink loop) is refused
before anything opens it, since opening a FIFO would wait forever.
"""
from __future__ import annotations

import os
import re
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..core.errors import InputError
from .section import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    MRC_SUFFIXES,
    TIFF_SUFFIXES,
    ArraySection,
    Section,
    Slices,
    check_dtype,
    check_size,
    check_whole_decode,
    pillow_array,
)


def open_section(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Section:
    """Open a PNG, JPEG, TIFF (8/16-bit, float, any byte order, multi-page) or MRC file."""
    path = Path(path)
    check_regular_file(path)
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        from .tiff import open_tiff

        return open_tiff(path, max_pixels)
    if suffix in MRC_SUFFIXES:
        from .mrc import open_mrc

        return open_mrc(path, max_pixels)
    return _open_pillow(path, max_pixels)


def check_regular_file(path: Path) -> None:
    """Refuse, in one line, what is not a readable regular file: opening a FIFO would
    wait forever, a symlink loop or a missing permission would end in a traceback."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except OSError as exc:
        raise InputError(path, f"cannot be opened ({exc.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(path, "is a directory, not an image")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(path, "is not a regular file (a FIFO, socket or device); emseg-lite reads image files")
    if not os.access(path, os.R_OK):
        raise InputError(path, "cannot be opened (permission denied)")


def read_slices(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Slices:
    """Read every page of a PNG, JPEG or TIFF into memory."""
    with open_section(path, max_pixels) as section:
        return section.read_all()


def _open_pillow(path: Path, max_pixels: int) -> ArraySection:
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
            check_size(path, (im.height, im.width), max_pixels)
            check_whole_decode(path, im.height * im.width * max(1, len(im.getbands())), im.format or "image")
            im.load()
            data = pillow_array(path, im, notes)
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError(path, "not an image emseg-lite can read (PNG, JPEG or TIFF)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(path, f"truncated or corrupt image ({exc})") from None
    return ArraySection(path, check_dtype(path, data)[np.newaxis], notes)


def image_files(folder: Path) -> list[Path]:
    """Image files in ``folder`` ordered by the first number in their name, then by name."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=natural_key)


def natural_key(path: Path) -> tuple:
    """Order by the first number in the name (``2.png`` before ``10.png``), then by name."""
    match = re.search(r"\d+", path.stem)
    return (int(match[0]) if match else -1, path.name)
