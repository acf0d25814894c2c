"""``emseg-lite volume``'s second step: region ids made seamless where blocks meet.

Each block task stored its regions with ids unique across the volume and the
ids on its core's four edges (``seams/``). Once every block is done, the client
reads a section's edge lines (kilobytes), joins the ids that face each other
across its seams (``post.seams``) and hands each block the part of that merge
within its own id range; a worker rewrites the block and marks it stitched.
Sections of one block have no seams and are left as they are.

Rewriting maps every id to the smallest id of its region, so a block rewritten
twice is what it was after once: ``--resume`` after a kill in this step redoes
the blocks not marked stitched and gives the arrays an uninterrupted run gives.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator, Union

import numpy as np

from ..core.geometry import Block
from ..formats.omezarr import Output
from ..post.seams import Edges, Merge, seam_pairs
from .volume import RETRIES, Job, bounded, first_line, in_flight, one_line, worker_output


@dataclass
class Started:
    total: int
    done_before: int


@dataclass
class BlockStitched:
    z: int
    row: int
    col: int
    seconds: float


@dataclass
class StitchFailed:
    z: int
    row: int
    col: int
    error: str


Event = Union[Started, BlockStitched, StitchFailed]


def run(job: Job, output: Output, height: int, width: int, client) -> Iterator[Event]:
    """Stitch every block not yet stitched (call once every block is done); nothing to
    do, and no event, when each section is a single block."""
    blocks = job.plan.blocks(height, width)
    if len(blocks) == 1:
        return
    stitched = output.stitched_blocks()
    yield Started(stitched.size, int(stitched.sum()))
    threads = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()) or 1

    def submissions():
        for z in range(stitched.shape[0]):
            todo = [b for b in blocks if not stitched[z, b.row, b.col]]
            if not todo:
                continue
            merge = section_merge(output, z, blocks)
            for block in todo:
                part = merge.within(output.first_id(z, block), output.stride - 1)
                yield (z, block), client.submit(stitch_block, job, z, block, part, pure=False, retries=RETRIES)

    for (z, block), future in bounded(submissions(), in_flight(threads)):
        if future.status == "error":
            yield StitchFailed(z, block.row, block.col, first_line(future.exception()))
        else:
            yield BlockStitched(z, block.row, block.col, future.result())


def section_merge(output: Output, z: int, blocks: list[Block]) -> Merge:
    """Which of section ``z``'s ids are one region, from its blocks' edge lines."""
    lines = np.asarray(output.seams[z])
    edges = {(b.row, b.col): Edges.unstacked(lines[b.row, b.col], *b.core.shape) for b in blocks}
    return Merge.of(seam_pairs(edges))


@one_line
def stitch_block(job: Job, z: int, block: Block, merge: Merge) -> float:
    """In a worker: rewrite one block's ids through its part of the merge; returns seconds."""
    start = time.perf_counter()
    output = worker_output(job)
    ids = np.asarray(output.regions[z, block.core.slices[0], block.core.slices[1]])
    first = output.first_id(z, block)
    count = min(max(int(ids.max(initial=0)) - first, 0), output.stride - 1)
    output.restitch(z, block, merge.apply(ids, first, count))
    return time.perf_counter() - start
