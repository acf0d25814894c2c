"""Writing masks, probability maps and overlays block by block.

A sink receives a section's blocks in raster order (``write``), hears when a
page is complete (``end_page``), and either ``commit``s -- the file appears
under its name at once, atomically -- or ``abort``s, leaving nothing behind.

Three forms, by size (``layout``):

* ``png``: one section up to ``WHOLE_OUTPUT_PIXELS`` -- held whole, written at commit;
* ``stack``: an ImageJ TIFF stack of such sections, written page by page;
* ``tiled``: bigger sections, a tiled TIFF (BigTIFF past 4 GB) written tile row
  by tile row as the blocks arrive, so only a band of rows is ever held.

TIFFs are written by tifffile in a thread of their own that pulls pages or
tiles from a short queue; compression and disk writes release the GIL, so the
next block's inference goes on meanwhile. A failure in that thread (a full
disk) surfaces at the next ``write`` or at ``commit`` as an ``OutputError``.
"""
from __future__ import annotations

import queue
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from ..core.errors import OutputError
from ..core.files import AtomicFile
from ..core.geometry import Region

WHOLE_OUTPUT_PIXELS = 8192 * 8192
"""Sections up to this size are written whole (PNG, or a page of an ImageJ stack)."""
TIFF_TILE = 512
IMAGEJ_TYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
"""What an ImageJ stack can hold; region ids (uint32) go into a plain multi-page TIFF."""
PNG_LEVEL = 1
"""zlib level of PNG outputs: a 512 x 512 mask takes 1 ms instead of 6 at the default
level and is ~20 % larger (masks and overlays compress well at any level)."""
_END, _ABORT = object(), object()


def layout(pages: int, height: int, width: int) -> str:
    """``png``, ``stack`` or ``tiled``: how a section of this shape is written."""
    if height * width > WHOLE_OUTPUT_PIXELS:
        return "tiled"
    return "stack" if pages > 1 else "png"


def suffix(kind: str) -> str:
    return ".png" if kind == "png" else ".tif"


class Sink:
    """One output file of ``pages`` x ``height`` x ``width`` (x 3 when ``rgb``)."""

    def __init__(self, path: Path, pages: int, height: int, width: int, dtype, rgb: bool = False,
                 pixel_size_nm: float | None = None):
        self.path = Path(path)
        self.pages, self.height, self.width = pages, height, width
        self.dtype = np.dtype(dtype)
        self.rgb = rgb
        self.pixel_size_nm = pixel_size_nm

    def _plane(self, height: int) -> np.ndarray:
        return np.zeros((height, self.width, 3) if self.rgb else (height, self.width), self.dtype)

    def write(self, page: int, region: Region, data: np.ndarray) -> None:
        raise NotImplementedError

    def end_page(self, page: int) -> None:
        """All blocks of ``page`` have been written."""

    def commit(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError


def open_sink(kind: str, path: Path, pages: int, height: int, width: int, dtype, rgb: bool = False,
              compress: bool = False, pixel_size_nm: float | None = None) -> Sink:
    """A sink of ``layout`` ``kind``; ``compress`` deflates TIFFs other than ImageJ stacks
    (masks: ~50x smaller).
    A known pixel size goes into the file (PNG pHYs, TIFF resolution, ImageJ unit)."""
    if kind == "png":
        return _PngSink(path, pages, height, width, dtype, rgb, pixel_size_nm)
    return _TiffSink(path, pages, height, width, dtype, rgb, pixel_size_nm, tiled=kind == "tiled", compress=compress)


class _PngSink(Sink):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._image = self._plane(self.height)

    def write(self, page: int, region: Region, data: np.ndarray) -> None:
        self._image[region.slices] = data

    def commit(self) -> None:
        target = AtomicFile(self.path)
        try:
            extra = {"dpi": (2.54e7 / self.pixel_size_nm,) * 2} if self.pixel_size_nm else {}
            Image.fromarray(self._image).save(target.tmp, format="PNG", compress_level=PNG_LEVEL, **extra)
            target.commit()
        except OSError as exc:
            target.abort()
            raise OutputError(self.path, f"cannot write ({exc.strerror or exc})") from None

    def abort(self) -> None:
        self._image = None


class _Aborted(Exception):
    """Raised inside the writer thread to stop tifffile when the output is abandoned."""


class _TiffSink(Sink):
    def __init__(self, path, pages, height, width, dtype, rgb, pixel_size_nm, tiled: bool, compress: bool):
        super().__init__(path, pages, height, width, dtype, rgb, pixel_size_nm)
        self._tiled = tiled
        self._queue: queue.Queue = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        self._band: np.ndarray | None = None  # the block row being assembled, below the rows carried into it
        self._pending = self._plane(0)  # tiled: complete rows short of a tile row, carried into the next band
        self._bands: list[np.ndarray] = []  # untiled: the page's complete bands, written whole at its end
        try:
            self._file = AtomicFile(self.path)
        except OSError as exc:
            raise OutputError(self.path, f"cannot write ({exc.strerror or exc})") from None
        shape, axes = (height, width, 3) if rgb else (height, width), "YXS" if rgb else "YX"
        if pages > 1 or not tiled:
            shape, axes = (pages, *shape), "Z" + axes
        options = dict(shape=shape, dtype=self.dtype, photometric="rgb" if rgb else "minisblack")
        if tiled or self.dtype not in IMAGEJ_TYPES:
            options.update(metadata={"axes": axes})
            if tiled:
                options.update(tile=(TIFF_TILE, TIFF_TILE))
            if compress:
                options.update(compression="zlib", compressionargs={"level": 1})
            if pixel_size_nm:
                options.update(resolution=(1e7 / pixel_size_nm,) * 2, resolutionunit="CENTIMETER")
        else:
            options.update(imagej=True, metadata={"axes": "ZYXS" if rgb else "ZYX"})
            if pixel_size_nm:
                options.update(resolution=(1 / pixel_size_nm,) * 2)
                options["metadata"]["unit"] = "nm"
        self._thread = threading.Thread(target=self._run, args=(options,), name="emseg-tiff-writer", daemon=True)
        self._thread.start()

    def _run(self, options: dict) -> None:
        import tifffile

        try:
            tifffile.imwrite(self._file.tmp, data=self._items(), **options)
        except BaseException as exc:  # handed to the producer, which reports it
            self._error = exc

    def _items(self):
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if item is _ABORT:
                raise _Aborted
            yield item

    def _put(self, item) -> None:
        while True:
            if self._error is None and not self._thread.is_alive() and item is _END:
                return  # tifffile stops pulling after the last page of a plain (non-ImageJ) stack
            if self._error is not None or not self._thread.is_alive():
                self._raise()
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _raise(self) -> None:
        error = self._error
        self.abort()
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        raise OutputError(self.path, f"cannot write ({reason})") from None

    def write(self, page: int, region: Region, data: np.ndarray) -> None:
        if region.x0 == 0:
            carried = self._pending.shape[0] if self._tiled else 0
            self._band = self._plane(carried + region.height)
            self._band[:carried] = self._pending
        self._band[-region.height :, region.x0 : region.x1] = data
        if region.x1 < self.width:
            return
        band, self._band = self._band, None
        if not self._tiled:
            self._bands.append(band)
            return
        whole = band.shape[0] // TIFF_TILE * TIFF_TILE
        for y in range(0, whole, TIFF_TILE):
            self._emit_tile_row(band[y : y + TIFF_TILE])
        self._pending = band[whole:].copy()  # frees the band: only the short remainder is carried

    def end_page(self, page: int) -> None:
        if not self._tiled:
            self._put(np.concatenate(self._bands) if self._bands else self._plane(0))
            self._bands = []
        elif self._pending.shape[0]:
            self._emit_tile_row(self._pending)
        self._pending = self._plane(0)

    def _emit_tile_row(self, rows: np.ndarray) -> None:
        for x in range(0, self.width, TIFF_TILE):
            tile = rows[:, x : x + TIFF_TILE]
            if tile.shape[:2] != (TIFF_TILE, TIFF_TILE):
                padded = np.zeros((TIFF_TILE, TIFF_TILE, *tile.shape[2:]), tile.dtype)
                padded[: tile.shape[0], : tile.shape[1]] = tile
                tile = padded
            self._put(np.ascontiguousarray(tile))

    def commit(self) -> None:
        self._put(_END)
        self._thread.join()
        if self._error is not None:
            self._raise()
        try:
            self._file.commit()
        except OSError as exc:
            self._file.abort()
            raise OutputError(self.path, f"cannot write ({exc.strerror or exc})") from None

    def abort(self) -> None:
        if self._thread.is_alive():
            while True:
                try:
                    self._queue.put(_ABORT, timeout=0.1)
                    break
                except queue.Full:
                    if not self._thread.is_alive():
                        break
                    self._drain()
            self._thread.join()
        self._file.abort()

    def _drain(self) -> None:
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
