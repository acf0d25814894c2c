"""The Python API: ``Segmenter.load(model=None)`` then ``.probabilities`` / ``.segment``.

A Segmenter is a TFLite network plus its model card. The card supplies the
intensity normalisation, tiling, threshold, post-processing and mask polarity;
the CLI and the benchmarks are thin layers over this class.

Arrays in: a 2-D slice of any size and numeric type. Arrays out:
``probabilities`` -> float32 membrane probability in [0, 1];
``segment`` -> uint8 mask in the card's polarity (ISBI: 0 = membrane, 255 = cell).
"""
from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from . import registry
from .card import ModelCard, PostProcessing, card_path_for
from .errors import ModelError
from .intensity import intensity_range, normalize
from .interpreter import TFLiteNet
from .postprocess import membrane_mask
from .blocks import Region
from .resample import Resampling
from .tiling import TileGrid, gather

log = logging.getLogger(__name__)


def default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class Segmenter:
    def __init__(self, net: TFLiteNet, card: ModelCard, grid: TileGrid):
        self.net = net
        self.card = card
        self.grid = grid

    @classmethod
    def load(
        cls,
        model: str | Path | None = None,
        threads: Optional[int] = None,
        delegate: Optional[str] = None,
        tile: Optional[int] = None,
        overlap: Optional[int] = None,
    ) -> "Segmenter":
        """Load an embedded model by name (default ``int8``) or a .tflite path with its card.

        ``tile`` / ``overlap`` override the card's tile size and halo; the
        defaults reproduce one pass over the whole slice exactly. On CPUs with
        AMX, call ``amx.forgo_amx()`` once before the first load for ~3x faster
        int8 (the CLI does; it changes the whole process, so this does not).
        """
        path = registry.resolve(model)
        card_path = card_path_for(path)
        card = ModelCard.load(card_path)
        card.check_model_file(path)
        net = TFLiteNet(path, threads or default_threads(), delegate)
        net.check_card(card, card_path)
        grid = TileGrid(tile or card.tiling.tile, card.tiling.halo if overlap is None else overlap, card.tiling.align)
        segmenter = cls(net, card, grid)
        segmenter._resize_net(grid.tile)
        log.info("loaded %s (%s, tile %d, halo %d, %d threads)", path, card.variant, grid.tile, grid.halo, net.threads)
        return segmenter

    def clone(self) -> "Segmenter":
        """Another interpreter of the same model, options and tile, for another thread."""
        return Segmenter.load(self.net.path, threads=self.net.threads, delegate=self.net.delegate,
                              tile=self.grid.tile, overlap=self.grid.halo)

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
        """Run on ``tile`` x ``tile`` inputs from now on (same halo): results do not change."""
        if tile == self.grid.tile:
            return
        grid = TileGrid(tile, self.grid.halo, self.grid.align)
        self._resize_net(tile)
        self.grid = grid

    def _resize_net(self, tile: int) -> None:
        try:
            self.net.resize(tile)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(self.net.path, f"cannot run this model on {tile} x {tile} tiles ({exc})") from None

    def postprocessing(self, method: str | None = None, threshold: float | None = None) -> PostProcessing:
        """The card's post-processing with optional overrides of method and threshold."""
        post = self.card.postprocessing
        if method is not None:
            post = dataclasses.replace(post, method=method)
        if threshold is not None:
            post = dataclasses.replace(post, threshold=threshold)
        return post

    def membrane(self, probability: np.ndarray, post: PostProcessing | None = None) -> np.ndarray:
        """Bool membrane map (True = membrane) from a probability map."""
        return membrane_mask(probability, post or self.card.postprocessing)

    def to_mask(self, membrane: np.ndarray) -> np.ndarray:
        """Bool membrane map -> uint8 mask in the card's polarity."""
        polarity = self.card.mask
        return np.where(membrane, np.uint8(polarity.membrane_value), np.uint8(polarity.cell_value))

    def segment(self, image: np.ndarray, post: PostProcessing | None = None, block: int | None = None,
                scale: float | None = None) -> np.ndarray:
        """uint8 membrane mask of a 2-D slice in the card's polarity (ISBI: 0 = membrane).

        Block by block (``blockwise``), exactly as ``emseg-lite segment``: sections up
        to 4096 x 4096 px in one piece, bigger ones in ``block``-pixel blocks.
        ``scale``: as for ``probabilities``.
        """
        from .blockwise import finish_block, infer_block, plan_for, prepare_page
        from .io import ArraySection

        if image.ndim != 2 or image.size == 0:
            raise ValueError(f"expected a non-empty 2-D slice, got shape {image.shape}")
        post = post or self.card.postprocessing
        plan = plan_for(self.card, *image.shape, post, block, self.grid.halo, scale)
        page = prepare_page(self, ArraySection(Path("<array>"), image[np.newaxis]), 0, plan)
        membrane = np.empty(image.shape, dtype=bool)
        for part in page.blocks:
            membrane[part.core.slices] = finish_block(infer_block(self, page, part), post).membrane
        return self.to_mask(membrane)
