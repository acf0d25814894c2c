"""TIFF sections read region by region: what lets a 30000 x 30000 section run in bounded memory.

Four ways in, chosen per file from its structure (tifffile parses it):

* contiguous, uncompressed data (ImageJ stacks, most microscope and tifffile
  output): a region is copied out of a memory map of just its rows, opened and
  closed per read, so neither the file nor the mapping stays resident;
* strips or tiles (compressed or not): only the segments a region touches are
  read and decoded; a small cache keeps them for the neighbouring blocks that
  share them;
* anything else (planar RGB, volumetric tiles, one compressed strip per page):
  decoded whole, which ``section.check_whole_decode`` refuses beyond its limit;
* compressions tifffile decodes only with imagecodecs (LZW, JPEG -- what
  Pillow and many microscopes write), when that 26 MB package is not
  installed: Pillow's libtiff decodes them, whole, within the same limit.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..core.geometry import Region
from .section import (
    ArraySection,
    RawSection,
    Section,
    check_dtype,
    check_size,
    check_whole_decode,
    finish_region,
    pillow_array,
    to_gray,
)

SEGMENT_CACHE_BYTES = 1 << 28
"""Decoded strips/tiles kept for neighbouring blocks (256 MiB)."""


_CORRUPT = (ValueError, OSError, EOFError, IndexError, KeyError, NotImplementedError)
"""What tifffile raises on a truncated or damaged file, besides its own TiffFileError."""


def open_tiff(path: Path, max_pixels: int) -> Section:
    import tifffile

    try:
        tif = tifffile.TiffFile(path)
        try:
            return _open(path, tif, max_pixels)
        except BaseException:
            tif.close()
            raise
    except tifffile.TiffFileError as exc:
        raise InputError(path, f"not a readable TIFF ({exc})") from None
    except _CORRUPT as exc:
        raise InputError(path, f"truncated or corrupt TIFF ({type(exc).__name__}: {exc})") from None


def _open(path: Path, tif, max_pixels: int) -> Section:
    if not tif.series:
        raise InputError(path, "not a readable TIFF (no image data in it)")
    series = tif.series[0]
    axes, shape = series.axes, series.shape
    if 0 in shape:
        raise InputError(path, f"image is empty (shape {shape})")
    if "Y" not in axes or "X" not in axes:
        raise InputError(path, f"unsupported TIFF layout (axes {axes})")
    height, width = shape[axes.index("Y")], shape[axes.index("X")]
    check_size(path, (height, width), max_pixels)
    kept = [(a, n) for a, n in zip(axes, shape) if n != 1 or a in "YX"]
    samples = kept.pop()[1] if kept[-1][0] == "S" else 1
    kept_axes = "".join(a for a, _ in kept)
    if kept_axes != "YX" and (len(kept_axes) != 3 or not kept_axes.endswith("YX")):
        raise InputError(path, f"unsupported TIFF layout (axes {axes}, shape {shape}); expected one section per page")
    pages = kept[0][1] if len(kept) == 3 else 1
    notes: list[str] = []
    if samples > 1:
        to_gray(path, np.zeros((1, samples), np.uint8), notes)  # checks the channel count, notes the conversion
    dtype = check_dtype(path, np.zeros(0, series.dtype)).dtype

    pixel_size = _pixel_size_nm(tif)
    keyframe = series.keyframe
    if not _decodable(keyframe.compression):
        tif.close()
        return _open_with_pillow(path, pages, height, width, samples, keyframe.compression, pixel_size)
    offset = series.dataoffset
    if offset is not None:
        file_dtype = np.dtype(series.dtype).newbyteorder(tif.byteorder)
        tif.close()
        return RawSection(path, offset, pages, height, width, samples, file_dtype, notes, pixel_size)
    frames = list(series.pages)
    if (len(frames) == pages and all(frame is not None for frame in frames) and keyframe.planarconfig == 1
            and keyframe.imagedepth == 1 and keyframe.samplesperpixel == samples):
        biggest = max(_segment_rows(keyframe, height) * (keyframe.tilewidth or width), 1) * samples * dtype.itemsize
        check_whole_decode(path, biggest, "this TIFF's largest strip or tile")
        return _SegmentedSection(path, tif, frames, keyframe, height, width, samples, dtype, notes, pixel_size)
    check_whole_decode(path, pages * height * width * samples * dtype.itemsize, "this TIFF layout")
    data = series.asarray()
    tif.close()
    data = data.reshape(pages, height, width, samples) if samples > 1 else data.reshape(pages, height, width)
    return ArraySection(path, finish_region(path, data, samples), notes, pixel_size)


def _decodable(compression) -> bool:
    """Whether tifffile can decode this compression here (LZW and JPEG need imagecodecs)."""
    from tifffile import TIFF

    try:
        TIFF.DECOMPRESSORS[compression]
    except KeyError:
        return False
    return True


def _open_with_pillow(path: Path, pages: int, height: int, width: int, samples: int, compression,
                      pixel_size: float | None) -> Section:
    """Pillow's libtiff reads LZW, JPEG and the rest without imagecodecs, page by page, whole."""
    from PIL import Image

    name = getattr(compression, "name", str(compression))
    check_whole_decode(path, pages * height * width * samples * 4, f"this {name}-compressed TIFF without imagecodecs")
    notes: list[str] = []
    try:
        with Image.open(path) as im:
            planes = []
            for index in range(pages):
                im.seek(index)
                im.load()
                planes.append(pillow_array(path, im, notes if index == 0 else []))
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(path, f"its compression ({name}) needs the 'imagecodecs' package, which is not installed: "
                               f'pip install "emseg-lite[formats]" ({exc})') from None
    return ArraySection(path, check_dtype(path, np.stack(planes)), notes, pixel_size)


def _pixel_size_nm(tif) -> float | None:
    """Pixel size in nm from OME-TIFF (PhysicalSizeX) or ImageJ (resolution and unit), else None.

    Plain TIFF resolution tags are not trusted: most software writes 72 dpi whatever the image."""
    from .pixelsize import from_imagej, from_ome

    if tif.is_ome:
        return from_ome(tif.ome_metadata)
    if tif.is_imagej:
        page = tif.pages.first
        return from_imagej(tif.imagej_metadata or {}, page.tags.get("XResolution"))
    return None


def _segment_rows(keyframe, height: int) -> int:
    return keyframe.tilelength if keyframe.is_tiled else min(keyframe.rowsperstrip, height)


class _TiffSection(Section):
    def __init__(self, path, tif, pages, height, width, samples, dtype, notes, pixel_size=None):
        super().__init__(path, pages, height, width, np.dtype(dtype).newbyteorder("="), notes, pixel_size)
        self._tif = tif
        self._samples = samples

    def close(self) -> None:
        self._tif.close()


class _SegmentedSection(_TiffSection):
    """Pages in strips or tiles: a region decodes only the segments it touches."""

    def __init__(self, path, tif, frames, keyframe, height, width, samples, dtype, notes, pixel_size):
        super().__init__(path, tif, len(frames), height, width, samples, dtype, notes, pixel_size)
        self._frames = frames
        self._keyframe = keyframe
        self._decode = keyframe.decode
        self._tiled = bool(keyframe.is_tiled)
        self._rows = _segment_rows(keyframe, height)
        self._cols = keyframe.tilewidth if self._tiled else width
        self._across = math.ceil(width / self._cols)
        self._cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._cached_bytes = 0

    def read(self, page: int, region: Region) -> np.ndarray:
        out = np.empty((region.height, region.width, self._samples), dtype=self._keyframe.dtype)
        for row in range(region.y0 // self._rows, (region.y1 - 1) // self._rows + 1):
            for col in range(region.x0 // self._cols, (region.x1 - 1) // self._cols + 1):
                segment = self._segment(page, row * self._across + col)
                box = Region(row * self._rows, col * self._cols,
                             row * self._rows + segment.shape[0], col * self._cols + segment.shape[1])
                inner = Region(max(box.y0, region.y0), max(box.x0, region.x0),
                               min(box.y1, region.y1), min(box.x1, region.x1))
                out[inner.within(region)] = segment[inner.within(box)]
        return finish_region(self.path, out if self._samples > 1 else out[..., 0], self._samples)

    def _segment(self, page: int, index: int) -> np.ndarray:
        key = (page, index)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        segment = self._load(page, index)
        self._cache[key] = segment
        self._cached_bytes += segment.nbytes
        while self._cached_bytes > SEGMENT_CACHE_BYTES and len(self._cache) > 1:
            _, dropped = self._cache.popitem(last=False)
            self._cached_bytes -= dropped.nbytes
        return segment

    def _load(self, page: int, index: int) -> np.ndarray:
        """Read and decode one strip/tile as (rows, cols, samples), zeros where the file has none."""
        frame = self._frames[page]
        offset, count = int(frame.dataoffsets[index]), int(frame.databytecounts[index])
        fh = self._tif.filehandle
        where = f"section {page}, {'tile' if self._tiled else 'strip'} {index}"
        try:
            data = None
            if offset and count:
                with fh.lock:
                    fh.seek(offset)
                    data = fh.read(count)
                if len(data) != count:
                    raise InputError(self.path, f"truncated TIFF ({where} ends past the end of the file)")
            kwargs = {"_fullsize": self._tiled}
            if self._keyframe.compression in (6, 7, 34892, 33007):
                kwargs.update(jpegtables=frame.jpegtables, jpegheader=self._keyframe.jpegheader)
            segment, _, shape = self._decode(data, index, **kwargs)
        except InputError:
            raise
        except Exception as exc:  # codecs raise their own types; any failure here is this file's
            raise InputError(self.path, f"cannot decode {where} ({_reason(exc)})") from None
        rows, cols, samples = shape[-3], shape[-2], shape[-1]
        if segment is None:
            return np.zeros((rows, cols, samples), self._keyframe.dtype)
        return np.asarray(segment).reshape(rows, cols, samples)


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "imagecodecs" in text:
        return f"its compression needs the 'imagecodecs' package: pip install imagecodecs; {text}"
    return text
