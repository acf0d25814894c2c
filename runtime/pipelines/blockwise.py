"""The block-wise core: read a block's window with its context, compute, keep its core.

Everything that segments -- ``Segmenter.segment``, ``emseg-lite segment`` (via
``batch``), and the volume and watch commands -- goes through these functions,
so there is one tiler, one post-processing and one answer however a section
arrives. Per page, ``prepare_page`` streams the page once for its intensity
range (percentiles of the whole section, as in a single pass); per block,
``infer_block`` reads the pixels the tiles reach and runs the network over the
block's window, and ``finish_block`` post-processes the window and crops the
core. The two steps are separate so that callers can run them in different
threads: inference holds the interpreter, post-processing runs in C without
the GIL beside it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..core.card import ModelCard, PostProcessing
from ..core.geometry import Block
from ..engine.intensity import normalize, page_range
from ..engine.model import Model
from ..engine.resample import Resampling
from ..formats.section import Section
from ..post.postprocess import membrane_mask, region_ops
from ..post.seams import cell_regions
from .blocks import BlockPlan, pieces, plan_section, round_up, tile_for


@dataclass(frozen=True)
class Page:
    """One page of a section, ready for its blocks: its normalisation and plan."""

    section: Section
    index: int
    low: float
    high: float
    encode: Callable[[np.ndarray], np.ndarray]
    plan: BlockPlan

    @property
    def blocks(self) -> list[Block]:
        return self.plan.blocks(self.section.height, self.section.width)


@dataclass
class Inferred:
    """A block's probability window, waiting for post-processing."""

    page: Page
    block: Block
    probability: np.ndarray
    pixels: np.ndarray | None  # the core's raw pixels, when an overlay needs them


@dataclass
class Finished:
    """What a block writes: its core's membrane map (True = membrane), and optionally
    the core's probability, normalised gray levels and regions (ids 1..region_count
    within the block, 0 on membrane)."""

    page: Page
    block: Block
    membrane: np.ndarray
    probability: np.ndarray | None
    gray: np.ndarray | None
    regions: np.ndarray | None = None
    region_count: int = 0


def plan_for(card: ModelCard, height: int, width: int, post: PostProcessing, block: int | None = None,
             halo: int | None = None, scale: float | None = None) -> BlockPlan:
    """``blocks.plan_section`` with this model's down-sampling and tile, and ``halo`` (default: the card's).

    ``scale`` (model pixels per input pixel) runs the network at the model's pixel
    size (``resample``): blocks stay on the input's grid, where post-processing and
    writing happen, sized so that their windows at the model's pixel size are what
    an unresampled section's would be.
    """
    tiling = card.tiling
    halo = tiling.halo if halo is None else halo
    watershed = post.method == "watershed"
    resampling = Resampling.of(height, width, scale)
    if resampling is None:
        return plan_section(height, width, tiling.align, halo, tiling.tile, watershed, block)
    model = plan_section(*resampling.model_shape, tiling.align, halo, tiling.tile, watershed,
                         None if block is None else max(1, round(block * scale)))
    if block is None and model.size >= max(resampling.model_shape):  # one block, as the model grid is
        return BlockPlan(round_up(max(height, width), tiling.align), 0, tiling.align, model.tile, resampling)
    size = round_up(math.ceil(model.size / scale), tiling.align)
    # a window's extent on the model's grid: its pixels, the filter's taps beyond them (2), and
    # its origin moved down onto the pooling grid (< align)
    window = min(max(resampling.model_shape), math.ceil((size + 2 * model.context) * scale) + 2 + tiling.align)
    return BlockPlan(size, model.context, tiling.align, tile_for(window, tiling.align, halo, tiling.tile), resampling)


def prepare_page(segmenter: Model, section: Section, index: int, plan: BlockPlan) -> Page:
    """Normalisation of one page (reads the page once, band by band), ready for its blocks."""
    return start_page(segmenter, section, index, *page_range(section, index, segmenter.card.normalization), plan)


def start_page(segmenter: Model, section: Section, index: int, low: float, high: float,
               plan: BlockPlan) -> Page:
    """A page whose intensity range is known (``infer_block`` switches to the plan's tile)."""
    return Page(section, index, low, high, segmenter.encoder(section.dtype, low, high, plan.resampling), plan)


def infer_block(segmenter: Model, page: Page, block: Block, keep_pixels: bool = False) -> Inferred:
    """Read what the block's tiles reach and run the network over its window, on the
    plan's tile. Several threads may read one section (each with its own segmenter)."""
    section = page.section
    if page.plan.tile:
        segmenter.use_tile(page.plan.tile)
    kept = []  # the core's raw pixels, when an overlay needs them

    def read(box):
        with section.lock:
            pixels = section.read(page.index, box)
        if keep_pixels:
            kept.append(pixels[block.core.within(box)].copy())
        return pixels

    probability = segmenter.region_probabilities(read, section.height, section.width, block.window, page.encode,
                                                 page.plan.resampling)
    core_pixels = kept[0] if keep_pixels else None
    return Inferred(page, block, probability, core_pixels)


def finish_block(inferred: Inferred, post: PostProcessing, keep_probability: bool = False,
                 keep_regions: bool = False) -> Finished:
    """Post-process the window, piece by piece (``blocks.pieces``), and keep the core
    (thread-safe: no interpreter involved). Regions are the 4-connected components of
    the core's cell pixels, numbered 1..n within the block (``seams`` makes them
    seamless across blocks)."""
    block = inferred.block
    membrane = np.empty(block.core.shape, dtype=bool)
    for piece in pieces(block, inferred.page.plan.context):
        probability = inferred.probability[piece.window.within(block.window)]
        membrane[piece.core.within(block.core)] = membrane_mask(probability, post)[piece.core.within(piece.window)]
    regions, count = cell_regions(membrane, region_ops()) if keep_regions else (None, 0)
    gray = None
    if inferred.pixels is not None:
        gray = normalize(inferred.pixels, inferred.page.low, inferred.page.high)
    probability = inferred.probability[block.core.within(block.window)] if keep_probability else None
    return Finished(inferred.page, block, membrane, probability, gray, regions, count)
