"""Boxes of pixels: the one unit of place that readers, the engine and writers share.

A ``Region`` is where in a section something is read, computed or written; a
``Block`` pairs the part a block writes (``core``) with the part it computes over
(``window``). They live at the bottom so that formats, the engine and the
pipelines name places in one vocabulary; how a section is cut into blocks is the
pipelines' business (``pipelines.blocks``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Region:
    """A half-open box of pixels: rows ``y0:y1``, columns ``x0:x1``."""

    y0: int
    x0: int
    y1: int
    x1: int

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def within(self, outer: "Region") -> tuple[slice, slice]:
        """This region's slices in an array that holds ``outer``."""
        return slice(self.y0 - outer.y0, self.y1 - outer.y0), slice(self.x0 - outer.x0, self.x1 - outer.x0)

    def pooled(self, pool: int) -> "Region":
        """The cells of a grid of ``pool`` x ``pool`` pixels that this region covers."""
        return Region(self.y0 // pool, self.x0 // pool, -(-self.y1 // pool), -(-self.x1 // pool))

    def grown(self, margin: int, height: int, width: int) -> "Region":
        """Grown by ``margin`` on every side, clipped to a ``height`` x ``width`` section."""
        return Region(max(0, self.y0 - margin), max(0, self.x0 - margin),
                      min(height, self.y1 + margin), min(width, self.x1 + margin))


@dataclass(frozen=True)
class Block:
    """One unit of work: compute over ``window``, keep and write ``core``."""

    row: int
    col: int
    core: Region
    window: Region
