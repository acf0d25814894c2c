"""Region ids that do not change where blocks meet.

A section segmented block by block gets its regions block by block: the
4-connected components of each block core's cell pixels (``cell_regions``),
numbered within the block and offset to be unique. A cell cut by a seam then has
one id on each side. Because the regions are exactly the components of the
membrane map's cell pixels, two ids that face each other across a seam, both on
cell pixels, belong to one region -- and no other pair does. So each block
keeps only its core's four edge lines of ids (``Edges``); the pairs facing each
other across every seam (``seam_pairs``) are joined by union-find (``Merge``),
and each block's ids are rewritten through a lookup table of its own id range
(``Merge.table``). The result is the labelling of the whole section's membrane
map at once, for any block size, from a few kilobytes per block: the same
scheme as daisy's block-wise connected components (funkelab/daisy), exact
here because the regions are components of the mask rather than of a
watershed, whose regions a seam could cut without a membrane between them.

The graph is small (only ids on a seam are nodes) and the lookup a dense gather
over one block's id range, so numpy does it in milliseconds; a graph library
(scipy.sparse.csgraph, fastremap) would add an import to the slim ``segment``
for no measurable gain.

Every id's root is the smallest id of its region, so rewriting a block twice
gives what rewriting it once gave: a relabelling interrupted half-way can simply
be run again (``emseg-lite volume --resume``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .regions import union


def cell_regions(membrane: np.ndarray, ops) -> tuple[np.ndarray, int]:
    """(int32 ids 1..n of the 4-connected components of the cell pixels, 0 on membrane; n)."""
    return ops.label(~np.asarray(membrane, dtype=bool))


@dataclass(frozen=True)
class Edges:
    """The ids on the four edge lines of a block's core, in the section's ids."""

    top: np.ndarray
    bottom: np.ndarray
    left: np.ndarray
    right: np.ndarray

    @classmethod
    def of(cls, ids: np.ndarray) -> "Edges":
        return cls(ids[0].copy(), ids[-1].copy(), ids[:, 0].copy(), ids[:, -1].copy())

    def stacked(self, length: int) -> np.ndarray:
        """(4, length) top, bottom, left, right, zero-padded: how a volume stores them."""
        lines = np.zeros((4, length), dtype=self.top.dtype)
        for row, line in enumerate((self.top, self.bottom, self.left, self.right)):
            lines[row, :line.size] = line
        return lines

    @classmethod
    def unstacked(cls, lines: np.ndarray, height: int, width: int) -> "Edges":
        return cls(lines[0, :width], lines[1, :width], lines[2, :height], lines[3, :height])


def seam_pairs(edges: dict[tuple[int, int], Edges]) -> np.ndarray:
    """(n, 2) ids facing each other across a seam, both on cell pixels, each pair once;
    ``edges`` by block (row, column)."""
    found = []
    for (row, col), here in edges.items():
        for neighbour, mine, theirs in (((row + 1, col), here.bottom, "top"), ((row, col + 1), here.right, "left")):
            if neighbour in edges:
                other = getattr(edges[neighbour], theirs)
                both = (mine > 0) & (other > 0)
                found.append(np.stack([mine[both], other[both]], axis=1))
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(found).astype(np.int64), axis=0)


@dataclass(frozen=True)
class Merge:
    """Which ids are one region: ``keys`` (sorted ids that meet a seam) and ``roots`` (the
    smallest id of each key's region)."""

    keys: np.ndarray
    roots: np.ndarray

    @classmethod
    def of(cls, pairs: np.ndarray) -> "Merge":
        keys, dense = np.unique(pairs, return_inverse=True)
        dense = dense.reshape(-1, 2)
        parents = union(keys.size - 1, dense[:, 0].astype(np.int32), dense[:, 1].astype(np.int32)) if keys.size else \
            np.zeros(0, dtype=np.int32)
        return cls(keys, keys[parents])

    @property
    def joined(self) -> np.ndarray:
        """Sorted ids that are not their region's root: the ids that disappear."""
        return self.keys[self.roots != self.keys]

    def table(self, first: int, count: int, renumber: bool = False) -> np.ndarray:
        """Lookup table for a block whose ids are ``first + 1 .. first + count``: entry i is
        the new id of ``first + i`` (entry 0: 0, membrane). ``renumber`` also closes the
        gaps the joined ids leave, so that a section's ids run 1..n."""
        ids = np.arange(first, first + count + 1, dtype=np.int64)
        start, stop = np.searchsorted(self.keys, [first + 1, first + count + 1])
        ids[self.keys[start:stop] - first] = self.roots[start:stop]
        if renumber:
            ids -= np.searchsorted(self.joined, ids)
        ids[0] = 0
        return ids

    def within(self, first: int, count: int) -> "Merge":
        """The part of the merge that a block with ids ``first + 1 .. first + count`` needs."""
        start, stop = np.searchsorted(self.keys, [first + 1, first + count + 1])
        return Merge(self.keys[start:stop], self.roots[start:stop])

    def apply(self, ids: np.ndarray, first: int, count: int, renumber: bool = False) -> np.ndarray:
        """A block's ids rewritten: those in ``first + 1 .. first + count`` through ``table``,
        any other (0 on membrane, or a root from another block written by an earlier pass)
        as it is."""
        inside = (ids > first) & (ids <= first + count)
        rewritten = ids.copy()
        rewritten[inside] = self.table(first, count, renumber)[ids[inside].astype(np.int64) - first]
        return rewritten
