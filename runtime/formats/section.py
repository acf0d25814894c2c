"""A section: the pages of one input file, each readable by region.

Every reader (``reader.open_section`` for PNG, JPEG, TIFF and MRC files,
``volumes.open_volume`` for stacks and zarr) returns a ``Section`` whose
``read`` gives a region of a page in the file's own numeric type, converted to
the machine's byte order, so that everything above reads sections of any size
the same way, in memory bounded by a block. The checks every reader applies
(size, decompression bombs, pixel types, RGB to gray) live here too, so a bad
file gets the same one-line ``InputError`` whatever its format.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..core.errors import InputError
from ..core.geometry import Region

TIFF_SUFFIXES = (".tif", ".tiff")
MRC_SUFFIXES = (".mrc", ".st", ".mrcs", ".rec", ".ali")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", *TIFF_SUFFIXES, *MRC_SUFFIXES)
DEFAULT_MAX_PIXELS = 1 << 30
"""Largest section (pixels per page) accepted without ``max_pixels`` being raised:
room for 32768 x 32768, far below what a tiny compressed 'decompression bomb'
would claim to be."""
WHOLE_DECODE_BYTES = 1 << 29
"""Largest page decoded in one piece (512 MiB of pixels): PNG, JPEG, and TIFFs
whose compression leaves no smaller unit. Bigger ones are refused with advice,
as decoding them would break the memory bound of block-wise processing."""
_SUPPORTED_KINDS = "biuf"
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass
class Slices:
    """Sections of one input file held whole: ``pages`` is (n, height, width), file dtype."""

    path: Path
    pages: np.ndarray
    is_stack: bool
    notes: list[str] = field(default_factory=list)


class Section:
    """The pages of one input file, each ``height`` x ``width``, readable by region."""

    def __init__(self, path: Path, pages: int, height: int, width: int, dtype: np.dtype, notes: list[str],
                 pixel_size_nm: float | None = None):
        self.pixel_size_nm = pixel_size_nm
        """Pixel size in nm where the file says it (ImageJ, OME-TIFF, MRC), else None."""
        self.lock = threading.Lock()
        """Held around ``read`` by callers that read from several threads (file handles, caches)."""
        self.path = path
        self.pages = pages
        self.height = height
        self.width = width
        self.dtype = np.dtype(dtype)
        self.notes = notes

    @property
    def is_stack(self) -> bool:
        return self.pages > 1

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def read(self, page: int, region: Region) -> np.ndarray:
        """The pixels of ``region`` of ``page`` (2-D, file dtype, native byte order)."""
        raise NotImplementedError

    def read_all(self) -> Slices:
        """Every page in memory, for callers that want arrays (training, evaluation)."""
        whole = Region(0, 0, self.height, self.width)
        pages = np.stack([self.read(page, whole) for page in range(self.pages)])
        return Slices(self.path, pages, self.is_stack, list(self.notes))

    def close(self) -> None:
        """Release the file (a no-op for sections held in memory)."""

    def __enter__(self) -> "Section":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ArraySection(Section):
    """A section decoded whole: (pages, height, width) in memory."""

    def __init__(self, path: Path, pages: np.ndarray, notes: list[str] | None = None, pixel_size_nm: float | None = None):
        super().__init__(path, pages.shape[0], pages.shape[1], pages.shape[2], pages.dtype, notes or [], pixel_size_nm)
        self.data = pages

    def read(self, page: int, region: Region) -> np.ndarray:
        return self.data[page][region.slices]


class RawSection(Section):
    """Uncompressed pages stored one after another at ``offset`` (TIFF, MRC): a region comes
    from a memory map of just its rows, opened and closed per read, so neither the file
    nor the mapping stays resident."""

    def __init__(self, path: Path, offset: int, pages: int, height: int, width: int, samples: int, file_dtype,
                 notes: list[str], pixel_size_nm: float | None = None, kind: str = "TIFF"):
        super().__init__(path, pages, height, width, np.dtype(file_dtype).newbyteorder("="), notes, pixel_size_nm)
        self.offset = offset
        self.file_dtype = np.dtype(file_dtype)
        self.samples = samples
        self._row_shape = (width, samples) if samples > 1 else (width,)
        expected = offset + pages * height * width * samples * self.file_dtype.itemsize
        size = path.stat().st_size
        if size < expected:
            raise InputError(path, f"truncated or corrupt {kind} (image data ends at byte {expected:,}, "
                                   f"the file has {size:,})")

    def read(self, page: int, region: Region) -> np.ndarray:
        row_bytes = self.width * self.samples * self.file_dtype.itemsize
        start = self.offset + (page * self.height + region.y0) * row_bytes
        try:
            rows = np.memmap(self.path, dtype=self.file_dtype, mode="r", offset=start,
                             shape=(region.height, *self._row_shape))
            data = np.array(rows[:, region.x0 : region.x1])
            del rows  # unmapped: what was read does not stay in this process's memory
        except (OSError, ValueError) as exc:
            raise InputError(self.path, f"cannot read section {page} ({getattr(exc, 'strerror', None) or exc}); "
                                        "was the file changed or removed while being read?") from None
        return finish_region(self.path, data, self.samples)


def pillow_array(path: Path, im: Image.Image, notes: list[str]) -> np.ndarray:
    if im.mode == "1":
        return np.asarray(im, dtype=np.uint8) * np.uint8(255)
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGB", "RGBA", "LA"):
        return to_gray(path, np.asarray(im), notes)
    if im.mode in ("L", "I", "F") or im.mode.startswith("I;16"):
        return np.asarray(im)
    raise InputError(path, f"unsupported image mode {im.mode}")


def to_gray(path: Path, data: np.ndarray, notes: list[str] | None) -> np.ndarray:
    """RGB(A) (last axis) -> gray with ITU-R 601 luma; a gray+alpha image keeps its gray.

    ``notes`` collects what was done (None: already noted, for later regions)."""
    channels = data.shape[-1]
    if channels == 2:
        if notes is not None:
            notes.append("gray+alpha: alpha ignored")
        return data[..., 0]
    if channels not in (3, 4):
        raise InputError(path, f"unsupported number of channels ({channels}); expected gray, RGB or RGBA")
    if notes is not None:
        notes.append("RGB converted to gray" + (" (alpha ignored)" if channels == 4 else ""))
    gray = data[..., :3].astype(np.float32) @ _LUMA
    if data.dtype.kind in "ui":
        return np.round(gray).astype(data.dtype)
    return gray


def check_size(path: Path, plane: tuple[int, int], max_pixels: int) -> None:
    height, width = plane
    if height == 0 or width == 0:
        raise InputError(path, f"image is empty ({width} x {height} pixels)")
    if height * width > max_pixels:
        raise InputError(
            path,
            f"image claims {width} x {height} = {height * width:,} pixels, above the limit of "
            f"{max_pixels:,} (a decompression bomb?); raise it with --max-pixels if the file is genuine",
        )


def check_whole_decode(path: Path, nbytes: int, kind: str) -> None:
    """Refuse to decode more than ``WHOLE_DECODE_BYTES`` in one piece."""
    if nbytes > WHOLE_DECODE_BYTES:
        raise InputError(
            path,
            f"{kind} can only be decoded whole, which needs {nbytes / 2**20:,.0f} MiB at once (limit "
            f"{WHOLE_DECODE_BYTES / 2**20:,.0f} MiB); save it as a tiled or striped TIFF to segment it block by block",
        )


def finish_region(path: Path, data: np.ndarray, samples: int) -> np.ndarray:
    """A region as a reader decoded it -> native byte order, one gray channel, a supported type:
    the last step of every reader that decodes regions (raw pages, TIFF strips and tiles)."""
    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))
    if samples > 1:
        data = to_gray(path, data, None)
    return check_dtype(path, data)


def check_dtype(path: Path, data: np.ndarray) -> np.ndarray:
    if data.dtype.kind not in _SUPPORTED_KINDS:
        raise InputError(path, f"unsupported pixel type {data.dtype}; expected integer or float gray values")
    if data.dtype.kind == "b":
        return data.astype(np.uint8) * np.uint8(255)
    return data

