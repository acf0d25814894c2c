"""MRC sections (``.mrc``, ``.st``, ``.mrcs``, ``.rec``, ``.ali``): what SerialEM and IMOD write.

mrcfile reads the header -- permissively, since real-world headers often break
the letter of the standard -- and gives the data's offset, shape and type; the
pixels are then read region by region like uncompressed TIFF data
(``section.RawSection``). Modes 0, 1, 2, 6 and 12 (int8, int16, float32, uint16,
float16) are sections of one value per pixel; the complex and RGB modes are
refused. The voxel size is in Å in the header; 0 means unknown.

mrcfile is imported here only, from the ``formats`` extra.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from .section import RawSection, check_size

_GRAY_MODES = {0, 1, 2, 6, 12}


def open_mrc(path: Path, max_pixels: int) -> RawSection:
    try:
        import mrcfile
    except ImportError:
        raise InputError(path, 'reading MRC files needs the mrcfile package: pip install "emseg-lite[formats]"') from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # permissive mode warns about every quirk of the header
            with mrcfile.mmap(path, mode="r", permissive=True) as mrc:
                header = mrc.header
                if header is None or mrc.data is None:
                    raise InputError(path, "not a readable MRC file (no valid header or data)")
                mode = int(header.mode)
                if mode not in _GRAY_MODES:
                    raise InputError(path, f"MRC mode {mode} is not a gray image (modes 0, 1, 2, 6, 12 are)")
                data = mrc.data
                shape = data.shape if data.ndim == 3 else (1, *data.shape)
                dtype = data.dtype
                offset = int(mrc.header.nbytes + mrc.extended_header.nbytes)
                voxel = float(mrc.voxel_size.x)
    except InputError:
        raise
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(path, f"not a readable MRC file ({exc})") from None
    pages, height, width = shape
    if 0 in shape:
        raise InputError(path, f"image is empty (shape {shape})")
    check_size(path, (height, width), max_pixels)
    return RawSection(path, offset, pages, height, width, 1, np.dtype(dtype), [],
                      voxel / 10.0 if voxel > 0 else None, kind="MRC file")


def mrc_pixels(path: Path) -> int:
    """Pixels of all the file's sections, from its header alone: sizes the progress bar
    and the choice of workers before anything is read."""
    import mrcfile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mrcfile.open(path, mode="r", permissive=True, header_only=True) as mrc:
            header = mrc.header
            return int(header.nx) * int(header.ny) * int(header.nz)
