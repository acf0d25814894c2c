"""Where a section is cut into blocks: the geometry of the block-wise core.

A section of any size is processed block by block so that memory is bounded by
a block, not by the section. Each block *writes* its ``core`` and *computes*
over its ``window``: the core grown by the post-processing ``context`` (clipped
to the section). The network's own context (the card's halo) is added by the
tiling on top of the window; the probabilities of a window are therefore
bit-identical to those of a whole-section pass. The watershed is not strictly
local: a region's flooding can be decided by seeds beyond any finite context.
Measured on a 2 x 2 mosaic of vnc-stack2 sections (2048 x 2048 px, blocks of
333 and 1000 px): the masks equal the whole-section watershed on 99.82 % of
pixels with no context, 99.995 % with 32 px, 99.9983 % with 48-96 px, and on
every pixel with 128 px; ``WATERSHED_CONTEXT`` is 32 px, since each pixel of
context costs network time over the window's margin (docs/big-sections.md).

Window origins are multiples of the network's down-sampling (``align``), so
the tiles of every window sit on the same pooling grid as a whole-section pass.
Small sections are one block with no context: one code path, the same answer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..core.geometry import Block, Region
from ..engine.resample import Resampling

WATERSHED_CONTEXT = 32
"""Post-processing context in pixels on each side of a block's core (watershed only)."""
SINGLE_BLOCK_PIXELS = 4096 * 4096
"""Sections up to this size are one block: no context needed, identical to one pass."""
TILES_PER_WINDOW = 3
POST_PIECE = 1024
"""Blocks with context are post-processed in pieces of at most this many core pixels a
side, each with the same context of its own: the watershed's sweeps over a 3000-px
window stream its arrays from memory, a 1000-px piece's stay in cache. Measured on a
3072-px window of a vnc-stack2 mosaic (AMD EPYC Zen 4, 2026-11-27): 29 ms per megapixel
whole, 23 in 1024-px pieces (context included), 32 and 27 beside a network thread; in the
whole pipeline a 20000-px section peaked at 1.01 GB instead of 1.21, its time within noise."""
MAX_TILE_CORE = 1088
"""Blocks of big sections span up to 3 x 3 network tiles of at most 1088 px of output
(1184-px tiles, ~350 MB of XNNPACK buffers): the halo is 15-16 % of the work instead of
41 % for the card's 608-px tile, the same probabilities."""


@dataclass(frozen=True)
class BlockPlan:
    """Blocks of ``size`` x ``size`` core pixels with ``context`` pixels around each,
    inferred on ``tile``-px network tiles (None: the caller's)."""

    size: int
    context: int
    align: int
    tile: int | None = None
    resampling: Resampling | None = None
    """The section's grid at the model's pixel size, where the network runs instead (``resample``)."""

    def __post_init__(self):
        if self.size <= 0 or self.size % self.align or self.context % self.align:
            raise ValueError(f"block {self.size} and context {self.context} must be multiples of {self.align} "
                             "(the network's down-sampling), the block positive")

    def shape(self, height: int, width: int) -> tuple[int, int]:
        """Blocks per column and per row."""
        return math.ceil(height / self.size), math.ceil(width / self.size)

    def count(self, height: int, width: int) -> int:
        rows, cols = self.shape(height, width)
        return rows * cols

    def blocks(self, height: int, width: int) -> list[Block]:
        """Every block of a section in raster order (the order the outputs are written in)."""
        rows, cols = self.shape(height, width)
        blocks = []
        for row in range(rows):
            for col in range(cols):
                y, x = row * self.size, col * self.size
                core = Region(y, x, min(height, y + self.size), min(width, x + self.size))
                blocks.append(Block(row, col, core, core.grown(self.context, height, width)))
        return blocks


def pieces(block: Block, context: int, size: int | None = None) -> list[Block]:
    """The block's core cut into near-equal pieces of at most ``size`` px a side, each
    with ``context`` px around it within the block's window; the block itself when it
    has no context (one block, one pass) or is no bigger than a piece (default ``POST_PIECE``)."""
    size = size or POST_PIECE
    if not context or max(block.core.shape) <= size:
        return [block]
    rows, cols = (_cuts(start, stop, size) for start, stop in ((block.core.y0, block.core.y1),
                                                                (block.core.x0, block.core.x1)))
    parts = []
    for row, (y0, y1) in enumerate(rows):
        for col, (x0, x1) in enumerate(cols):
            core = Region(y0, x0, y1, x1)
            grown = core.grown(context, block.window.y1, block.window.x1)
            window = Region(max(grown.y0, block.window.y0), max(grown.x0, block.window.x0), grown.y1, grown.x1)
            parts.append(Block(row, col, core, window))
    return parts


def _cuts(start: int, stop: int, size: int) -> list[tuple[int, int]]:
    count = -(-(stop - start) // size)
    edges = [start + (stop - start) * i // count for i in range(count + 1)]
    return list(zip(edges[:-1], edges[1:]))


def plan_section(height: int, width: int, align: int, halo: int, card_tile: int, watershed: bool,
                 block: int | None = None) -> BlockPlan:
    """The plan for one section: one block when it is small, else equal blocks of at
    most ``TILES_PER_WINDOW`` tiles, and the tile that covers a window with least waste.

    Balancing matters: a fixed block size leaves a thin last block whose window
    still costs whole tiles (a 6144-px section in 3008-px blocks ran 49 tiles
    instead of 36).
    """
    context = WATERSHED_CONTEXT if watershed else 0
    side = max(height, width)
    if block is None and height * width <= SINGLE_BLOCK_PIXELS:
        size, context, window = side, 0, side
    else:
        if block is None:
            count = math.ceil(side / (TILES_PER_WINDOW * MAX_TILE_CORE - 2 * context))
            block = math.ceil(side / count)
        size = round_up(block, align)
        window = min(side, size + 2 * context)
    return BlockPlan(round_up(size, align), context, align, tile_for(window, align, halo, card_tile))


def tile_for(window: int, align: int, halo: int, card_tile: int) -> int:
    """The network tile that covers a ``window``-px window in the fewest tiles of
    at most ``MAX_TILE_CORE`` px of output, with least waste."""
    tiles = math.ceil(window / MAX_TILE_CORE)
    return max(card_tile, round_up(math.ceil(window / tiles), align) + 2 * halo)


def round_up(value: int, step: int) -> int:
    return max(step, -(-value // step) * step)
