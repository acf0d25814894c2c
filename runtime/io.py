"""Reading EM sections: whole, or region by region for sections too big to hold.

``open_section`` returns a ``Section``: the pages (sections) of one file, each
readable by region (``read``) in the file's own numeric type, converted to the
machine's byte order. TIFFs are read region by region wherever the file
allows it -- uncompressed data through a short-lived memory map, strips and
tiles by decoding only the segments a region touches (with a small cache, as
neighbouring blocks share segments) -- so a section of any size costs memory
in proportion to a block. PNG and JPEG, and TIFFs compressed as one piece, can
only be decoded whole; that is refused beyond ``WHOLE_DECODE_BYTES``.

Plain images are one page; multi-page TIFFs (ImageJ stacks, either byte order)
are many. RGB(A) is converted to gray and says so in ``notes``. Anything
unusable raises ``InputError`` with one line naming the file.
"""
from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .blocks import Region
from .card import Normalization
from .errors import InputError
from .intensity import RangeFinder

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
TIFF_SUFFIXES = (".tif", ".tiff")
DEFAULT_MAX_PIXELS = 1 << 30
"""Largest section (pixels per page) accepted without ``max_pixels`` being raised:
room for 32768 x 32768, far below what a tiny compressed 'decompression bomb'
would claim to be."""
WHOLE_DECODE_BYTES = 1 << 29
"""Largest page decoded in one piece (512 MiB of pixels): PNG, JPEG, and TIFFs
whose compression leaves no smaller unit. Bigger ones are refused with advice,
as decoding them would break the memory bound of block-wise processing."""
BAND_ROWS = 1024
"""Rows per read when a whole page streams through (the normalisation pass)."""

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

    def __init__(self, path: Path, pages: int, height: int, width: int, dtype: np.dtype, notes: list[str]):
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

    def intensity_range(self, page: int, spec: Normalization) -> tuple[float, float]:
        """``intensity.intensity_range`` of a whole page, streamed in bands of rows."""
        finder = RangeFinder(self.dtype, self.height * self.width, spec)
        for y in range(0, self.height, BAND_ROWS):
            band = self.read(page, Region(y, 0, min(self.height, y + BAND_ROWS), self.width))
            finder.add(y * self.width, band)
        return finder.result()

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

    def __init__(self, path: Path, pages: np.ndarray, notes: list[str] | None = None):
        super().__init__(path, pages.shape[0], pages.shape[1], pages.shape[2], pages.dtype, notes or [])
        self.data = pages

    def read(self, page: int, region: Region) -> np.ndarray:
        return self.data[page][region.slices]


def open_section(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Section:
    """Open a PNG, JPEG or TIFF (8/16-bit, float, any byte order, multi-page)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file")
    if path.is_dir():
        raise InputError(path, "is a directory, not an image")
    if path.suffix.lower() in TIFF_SUFFIXES:
        from .tiff import open_tiff

        return open_tiff(path, max_pixels)
    return _open_pillow(path, max_pixels)


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
            data = _pillow_array(path, im, notes)
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError(path, "not an image emseg-lite can read (PNG, JPEG or TIFF)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(path, f"truncated or corrupt image ({exc})") from None
    return ArraySection(path, check_dtype(path, data)[np.newaxis], notes)


def _pillow_array(path: Path, im: Image.Image, notes: list[str]) -> np.ndarray:
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


def check_dtype(path: Path, data: np.ndarray) -> np.ndarray:
    if data.dtype.kind not in _SUPPORTED_KINDS:
        raise InputError(path, f"unsupported pixel type {data.dtype}; expected integer or float gray values")
    if data.dtype.kind == "b":
        return data.astype(np.uint8) * np.uint8(255)
    return data

