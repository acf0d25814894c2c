"""One page's region ids gathered block by block and made seamless (``post.seams``).

``segment --regions`` and the napari plugin write a page's blocks as they
finish; each block's regions are numbered on from the last block's, so ids never
repeat, and ``finish`` then rewrites every block through the page's seam merge,
renumbered so that the page's ids run on without gaps. ``emseg-lite volume``
stitches the same way, but per block on Dask workers (``pipelines.volume``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.errors import OutputError
from ..core.geometry import Region
from ..post.seams import Edges, Merge, seam_pairs
from .blockwise import Finished


def id_store(shape: tuple[int, int], blocks: int, output: Path) -> np.ndarray:
    """Where a page's ids wait for its seams to be joined: memory for a page of one block
    (its mask is held as large), else a memory-mapped file beside ``output``, unlinked at
    once, so that a 20000-px section's 1.6 GB of ids stay out of memory and no crash
    leaves the file behind."""
    if blocks == 1:
        return np.empty(shape, np.uint32)
    import tempfile  # here: a one-block section, the common case, starts without it

    try:
        with tempfile.TemporaryFile(dir=output.parent) as spill:
            return np.memmap(spill, np.uint32, "w+", shape=shape)
    except OSError as exc:
        raise OutputError(output, f"cannot hold the region ids ({exc.strerror or exc})") from None


class PageIds:
    """The ids of one page, in ``store``: a (height, width) array to write into, in
    memory or memory-mapped for sections too big to hold. ``first``: the last id of the
    pages before (ids are unique across a stack)."""

    def __init__(self, store: np.ndarray, first: int = 0):
        self.store = store
        self.last = first
        self._blocks: list[tuple[Region, int, int]] = []
        self._edges: dict[tuple[int, int], Edges] = {}

    def put(self, done: Finished) -> None:
        """Store a block's regions (``keep_regions``), numbered after the blocks before it."""
        core = done.block.core
        if self.last + done.region_count >= np.iinfo(self.store.dtype).max:
            raise OutputError("<regions>", f"more than {np.iinfo(self.store.dtype).max} regions do not fit "
                                           f"{self.store.dtype} ids")
        ids = done.regions.astype(self.store.dtype)
        np.add(ids, self.last, out=ids, where=ids > 0)
        self.store[core.slices] = ids
        self._blocks.append((core, self.last, done.region_count))
        self._edges[done.block.row, done.block.col] = Edges.of(ids)
        self.last += done.region_count

    def finish(self) -> list[Region]:
        """Join the regions that meet at seams and close the gaps; the blocks' cores, in
        the order they came (raster order)."""
        if len(self._blocks) > 1:
            merge = Merge.of(seam_pairs(self._edges))
            for core, first, count in self._blocks:
                self.store[core.slices] = merge.apply(self.store[core.slices], first, count, renumber=True)
            self.last -= merge.joined.size
        return [core for core, _, _ in self._blocks]
