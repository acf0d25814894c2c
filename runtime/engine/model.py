"""The network at work: a TFLite model plus its card, tiled over any region of a slice.

A ``Model`` is what every pipeline runs: the card supplies the intensity
normalisation, tile, halo and down-sampling, the interpreter the numbers.
``region_probabilities`` is the one way membrane probability is computed -- for a
whole slice, a block's window, or a window at the model's pixel size -- so that
a block's probabilities are bit-identical to a whole-section pass. Turning them
into masks is the post-processing's (``post``) and the pipelines' job
(``pipelines.segmenter.Segmenter`` adds ``segment``).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..core.card import ModelCard, card_path_for
from ..core.errors import ModelError
from ..core.geometry import Region
from . import registry
from .intensity import intensity_range, normalize
from .interpreter import Net, TFLiteNet
from .resample import Resampling
from .tiling import TileGrid, gather

log = logging.getLogger(__name__)


ACCELERATORS = ("cpu", "gpu", "auto")
"""``cpu``: the TFLite interpreter (XNNPACK); ``gpu``: LiteRT's WebGPU accelerator (``gpu``);
``auto``: the GPU where a hardware adapter exists, else the CPU."""


def default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class Model:
    """A TFLite network plus its model card: membrane probability of any region of a slice."""

    def __init__(self, net: Net, card: ModelCard, grid: TileGrid, placement: str = "cpu"):
        self.net = net
        self.card = card
        self.grid = grid
        self.placement = placement
        """Which accelerator runs the network and why, one line (``auto`` explains its choice)."""

    @classmethod
    def load(
        cls,
        model: str | Path | None = None,
        threads: Optional[int] = None,
        delegate: Optional[str] = None,
        tile: Optional[int] = None,
        overlap: Optional[int] = None,
        accelerator: str = "cpu",
    ) -> "Model":
        """Load an embedded model by name (default ``int8``; on the GPU ``registry.GPU_MODEL``)
        or a .tflite path with its card, on the ``accelerator`` (one of ``ACCELERATORS``).

        ``tile`` / ``overlap`` override the card's tile size and halo; the
        defaults reproduce one pass over the whole slice exactly. On CPUs with
        AMX, call ``amx.forgo_amx()`` once before the first load for ~3x faster
        int8 (the CLI does; it changes the whole process, so this does not).
        """
        net, placement = _open_net(model, accelerator, threads or default_threads(), delegate)
        card_path = card_path_for(net.path)
        card = ModelCard.load(card_path)
        card.check_model_file(net.path)
        net.check_card(card, card_path)
        grid = TileGrid(tile or card.tiling.tile, card.tiling.halo if overlap is None else overlap, card.tiling.align)
        segmenter = cls(net, card, grid, placement)
        segmenter._resize_net(grid.tile)
        log.info("loaded %s (%s, tile %d, halo %d, %s)", net.path, card.variant, grid.tile, grid.halo, placement)
        return segmenter

    def clone(self) -> "Model":
        """Another interpreter of the same model, options, accelerator and tile, for another thread."""
        return type(self).load(self.net.path, threads=self.net.threads, delegate=self.net.delegate,
                               tile=self.grid.tile, overlap=self.grid.halo, accelerator=self.net.accelerator)

    def probabilities(self, image: np.ndarray, on_tile: Callable[[int, int], None] | None = None,
                      scale: float | None = None) -> np.ndarray:
        """Membrane probability (float32, [0, 1]) of a 2-D slice, tiled with the card's halo.

        ``on_tile(done, total)`` is called after each tile, for progress reports.
        ``scale`` (model pixels per input pixel) runs the network at the model's
        pixel size and returns the probability on the slice's own grid (``resample``).
        """
        if image.ndim != 2 or image.size == 0:
            raise ValueError(f"expected a non-empty 2-D slice, got shape {image.shape}")
        height, width = image.shape
        resampling = Resampling.of(height, width, scale)
        encode = self.encoder(image.dtype, *intensity_range(image, self.card.normalization), resampling)
        return self.region_probabilities(lambda box: image[box.slices], height, width, Region(0, 0, height, width),
                                         encode, resampling, on_tile)

    def region_probabilities(self, read: Callable[[Region], np.ndarray], height: int, width: int, region: Region,
                             encode: Callable[[np.ndarray], np.ndarray], resampling: Resampling | None = None,
                             on_tile: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Membrane probability of ``region`` of a ``height`` x ``width`` slice whose
        pixels ``read(box)`` returns; with ``resampling``, the network runs on the
        slice resampled to the model's pixel size and the result comes back onto
        the slice's grid (``encode``: ``encoder`` given the same ``resampling``)."""
        if resampling is None:
            reach = self.grid.reach(height, width, region)
            return self.window_probabilities(read(reach), (reach.y0, reach.x0), height, width, region, encode, on_tile)
        model_height, model_width = resampling.model_shape
        model_region = resampling.model_region(region, self.grid.align)
        reach = self.grid.reach(model_height, model_width, model_region)
        box = resampling.input_box(reach, region)
        pixels = resampling.to_model(read(box), box, reach)
        probability = self.window_probabilities(pixels, (reach.y0, reach.x0), model_height, model_width,
                                                model_region, encode, on_tile)
        return resampling.to_input(probability, model_region, region)

    def window_probabilities(self, pixels: np.ndarray, origin: tuple[int, int], height: int, width: int,
                             region: Region, encode: Callable[[np.ndarray], np.ndarray],
                             on_tile: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Membrane probability of ``region`` of a ``height`` x ``width`` slice.

        ``pixels`` hold the slice from ``origin`` on and cover at least what the
        tiles reach (``self.grid.reach``); ``encode`` maps raw pixels to network
        input with the whole slice's normalisation (``encoder``). The result is
        bit-identical to the same pixels of a whole-slice pass when the region's
        origin is a multiple of the card's ``align``.
        """
        result = np.empty(region.shape, dtype=np.float32)
        tiles = list(self.grid.tiles(height, width, region))
        for done, tile in enumerate(tiles, start=1):
            raw = self.net.invoke(encode(gather(pixels, tile, origin)))
            result[tile.y : tile.y + tile.height, tile.x : tile.x + tile.width] = self.net.decode(self.grid.crop(raw, tile))
            if on_tile:
                on_tile(done, len(tiles))
        return result

    def encoder(self, dtype: np.dtype, low: float, high: float,
                resampling: Resampling | None = None) -> Callable[[np.ndarray], np.ndarray]:
        """Raw pixels -> network input: normalised, then quantised for int8 models.

        8- and 16-bit slices -- what microscopes write -- go through a table of
        every grey level's input value, one lookup per pixel instead of float
        arithmetic and tile-sized float temporaries; the values are the same,
        as both paths apply the same element-wise functions. With ``resampling``
        the network reads resampled pixels, float32 whatever the file's type.
        """
        if resampling is None and dtype in (np.uint8, np.uint16):
            table = self.net.encode(normalize(np.arange(np.iinfo(dtype).max + 1, dtype=dtype), low, high))
            return table.__getitem__
        return lambda pixels: self.net.encode(normalize(pixels, low, high))

    def use_tile(self, tile: int) -> None:
        """Run on ``tile`` x ``tile`` inputs from now on (same halo): results do not change,
        so a network that keeps its tile (on the GPU) simply goes on with it."""
        if tile == self.grid.tile or not self.net.resizable:
            return
        grid = TileGrid(tile, self.grid.halo, self.grid.align)
        self._resize_net(tile)
        self.grid = grid

    def _resize_net(self, tile: int) -> None:
        try:
            self.net.resize(tile)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(self.net.path, f"cannot run this model on {tile} x {tile} tiles ({exc})") from None


def _open_net(model: str | Path | None, accelerator: str, threads: int, delegate: str | None) -> tuple[Net, str]:
    """The network for ``model`` on ``accelerator``, and the one line saying which ran and why.

    ``auto`` takes the GPU only when it is a real one: Dawn also offers software
    Vulkan (llvmpipe): about 1 s a tile where XNNPACK takes tens of milliseconds.
    """
    if accelerator not in ACCELERATORS:
        raise ValueError(f"unknown accelerator {accelerator!r}: choose {', '.join(ACCELERATORS)}")
    if delegate:
        if accelerator == "gpu":
            raise ModelError(delegate, "a delegate library and the GPU accelerator exclude each other: give one")
        return TFLiteNet(registry.resolve(model), threads, delegate), f"delegate {delegate}"
    if accelerator == "cpu":
        return TFLiteNet(registry.resolve(model), threads), f"cpu ({_threads(threads)})"
    from .gpu import GpuNet, GpuUnavailable

    try:
        net = GpuNet(registry.resolve(registry.GPU_MODEL if model is None else model))
    except GpuUnavailable as exc:
        if accelerator == "gpu":
            raise
        reason = exc.reason
    else:
        if accelerator == "gpu" or not net.software:
            return net, f"gpu ({net.adapter})"
        net.close()
        reason = f"only a software Vulkan adapter ({net.adapter}), slower than the CPU"
    return TFLiteNet(registry.resolve(model), threads), f"cpu ({_threads(threads)}; auto: {reason})"


def _threads(count: int) -> str:
    return "1 thread" if count == 1 else f"{count} threads"
