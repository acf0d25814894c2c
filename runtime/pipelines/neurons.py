"""``emseg-lite neurons``: 3-D objects of a segmented volume, block-wise on Dask, resumable.

Three steps over object blocks (every section, ``block`` x ``block`` pixels):

1. **fragments** (a task per block, on the workers): the block's membrane
   probability in 3-D -- the stored per-section map, averaged on isotropic data
   (FIB-SEM) with the network's view of the block's xz and yz planes, pooled in xy
   on serial sections --, waterz's fragments and merge history (``post.objects``),
   written on that working pixel with the block's faces (``formats.objectstore``);
2. **graph** (the client): every block's history, plus the candidate merges
   across each face between blocks, scored from the stored faces -- one list of
   (fragment, fragment, score), kept in the output;
3. **neurons** (a task per block): fragments joined by every merge below the
   threshold (``Agglomeration.merge``), each block rewritten through its part of
   that union and repeated back to every pixel (in the working pixels that hold
   membrane, each pixel from its nearest clear one: ``post.objects.unpooled``).

Another threshold repeats step 3 only. Each block is marked when its writes
returned, so ``kill -9`` and the same command again finish what was missing with
the arrays an uninterrupted run writes.
"""
from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from typing import Iterator, Union

import numpy as np

from ..core.geometry import Region
from ..formats.objectstore import ObjectStore
from ..formats.omezarr import probability_of
from ..post.objects import Agglomeration, face_merges, fragments_and_merges, pooled, unpooled
from ..post.seams import Merge
from .volume import (
    RETRIES,
    bounded,
    cached,
    first_line,
    in_flight,
    one_line,
    worker_segmenter,
    worker_volume,
)

STEPS = ("fragments", "neurons")


@dataclass(frozen=True)
class ObjectsJob:
    """What every task needs, by value: the volume's input and output, the model that
    segmented it, and the objects' parameters."""

    input: str
    output: str
    model: str
    threads: int
    block: int
    scoring: str
    threshold: float
    isotropic: bool
    pool: int
    """The xy pooling of the objects' working pixel (``post.objects.xy_pool``)."""

    def parameters(self) -> dict:
        """What the stored objects depend on (``objectstore.open_objects``)."""
        return {"block": self.block, "scoring": self.scoring, "threshold": self.threshold,
                "isotropic": self.isotropic, "pool": self.pool}


@dataclass
class Started:
    step: str
    total: int
    done_before: int


@dataclass
class BlockDone:
    step: str
    row: int
    col: int
    seconds: float
    view_seconds: float = 0.0
    """Of ``seconds``, the network's time on the block's xz and yz planes (isotropic voxels)."""
    peak_rss_mb: float = 0.0
    """The worker process's peak resident memory so far."""


@dataclass
class BlockFailed:
    step: str
    row: int
    col: int
    error: str


@dataclass
class GraphDone:
    fragments: int
    merges: int
    seconds: float


Event = Union[Started, BlockDone, BlockFailed, GraphDone]


def object_grid(height: int, width: int, block: int, pool: int = 1) -> tuple[int, int]:
    """Block height and width: the fewest blocks of at most ``block`` px a side, as equal as
    a regular grid of whole working pixels (``pool`` px) allows -- no thin last block, whose
    agglomeration would see slivers of cells. Chunks of the object arrays follow it, so
    no two blocks write one chunk."""
    def side(size: int) -> int:
        blocks = -(-size // block)
        return -(-size // (blocks * pool)) * pool

    return side(height), side(width)


def object_blocks(height: int, width: int, block: int, pool: int = 1) -> list[tuple[int, int, Region]]:
    """(row, column, core) of every object block, in raster order."""
    by, bx = object_grid(height, width, block, pool)
    return [(row, col, Region(y, x, min(height, y + by), min(width, x + bx)))
            for row, y in enumerate(range(0, height, by)) for col, x in enumerate(range(0, width, bx))]


def run(job: ObjectsJob, store: ObjectStore, client) -> Iterator[Event]:
    """Every step not yet done; stops after a step in which a block failed."""
    blocks = object_blocks(*store.neurons.shape[1:], job.block, job.pool)
    threads = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()) or 1
    fragmented = np.asarray(store.fragmented[...]) == 1
    todo = [b for b in blocks if not fragmented[b[0], b[1]]]
    yield Started("fragments", len(blocks), len(blocks) - len(todo))
    failed = yield from _step(client, "fragments", fragment_block, job, todo, threads, lambda b: ())
    if failed:
        return
    start = time.perf_counter()
    graph = agglomeration(store, blocks)
    merge = graph.merge(job.threshold)
    yield GraphDone(int(np.unique(graph.pairs).size), len(graph.scores), time.perf_counter() - start)
    labelled = np.asarray(store.labelled[...]) == 1
    todo = [b for b in blocks if not labelled[b[0], b[1]]]
    yield Started("neurons", len(blocks), len(blocks) - len(todo))
    first = store.first_id
    yield from _step(client, "neurons", label_block, job, todo, threads,
                     lambda b: (merge.within(first(b[0], b[1]), store.span),))


def _step(client, step: str, task, job: ObjectsJob, todo, threads: int, extra) -> Iterator[Event]:
    """Run ``task`` on each block of ``todo``; returns whether any failed."""
    failed = False

    def submissions():
        for block in todo:
            yield block, client.submit(task, job, *block, *extra(block), pure=False, retries=RETRIES)

    for (row, col, _), future in bounded(submissions(), in_flight(threads)):
        if future.status == "error":
            failed = True
            yield BlockFailed(step, row, col, first_line(future.exception()))
        else:
            yield BlockDone(step, row, col, *future.result())
    return failed


def agglomeration(store: ObjectStore, blocks: list[tuple[int, int, Region]]) -> Agglomeration:
    """Every block's merge history and the candidate merges across the faces between blocks."""
    faces = np.asarray(store.faces[...])
    chance = np.asarray(store.face_probability[...], dtype=np.float32)
    where = {(row, col): core.pooled(store.pool) for row, col, core in blocks}
    parts = [Agglomeration(*store.history(row, col)) for row, col, _ in blocks]
    for (row, col), core in where.items():
        if (row + 1, col) in where:  # this block's bottom face against the next one's top
            width = core.width
            parts.append(face_merges(faces[row, col, 1, :, :width], chance[row, col, 1, :, :width],
                                     faces[row + 1, col, 0, :, :width], chance[row + 1, col, 0, :, :width]))
        if (row, col + 1) in where:  # right face against the next one's left
            height = core.height
            parts.append(face_merges(faces[row, col, 3, :, :height], chance[row, col, 3, :, :height],
                                     faces[row, col + 1, 2, :, :height], chance[row, col + 1, 2, :, :height]))
    return Agglomeration.of(parts)


# --- worker side ----------------------------------------------------------------------------------------


def _store(job: ObjectsJob) -> ObjectStore:
    import zarr

    path = job.output
    # keyed by the parameters too: a long-lived cluster (--scheduler) must not keep the
    # handles of arrays that a run with another block size created again
    key = ("objects", path, job.block, job.scoring, job.isotropic, job.pool)
    return cached(key, lambda: ObjectStore(path, zarr.open_group(path, mode="r+")))


@one_line
def fragment_block(job: ObjectsJob, row: int, col: int, core: Region) -> tuple[float, float]:
    """Fragments and merge history of one block; returns (seconds, of which on xz and yz planes, peak MB)."""
    start = time.perf_counter()
    store = _store(job)
    probability = store.group["probabilities"][:, core.slices[0], core.slices[1]]
    views = 0.0
    if job.isotropic:
        probability = (probability_of(probability) + 2.0 * orthogonal_probability(job, core, store.depth)) / 3.0
        views = time.perf_counter() - start
    # serial sections stay in their stored bytes: pooled first, the working pixel made float
    probability = pooled(probability, job.pool)
    fragments, merges = fragments_and_merges(probability, store.first_id(row, col), job.scoring)
    store.write_block(row, col, core, fragments, probability, merges.pairs, merges.scores)
    return time.perf_counter() - start, views, _peak_mb()


def orthogonal_probability(job: ObjectsJob, core: Region, depth: int) -> np.ndarray:
    """The mean of the network's membrane probability over the block's xz planes and its
    yz planes (z, y, x): on isotropic voxels the 2-D network sees a membrane that runs
    along the sections as well as one across them. Each plane is read with the
    network's halo around the core, so the core's values are those of whole planes."""
    segmenter = worker_segmenter(job.model, job.threads)
    volume = worker_volume(job.input)
    window = core.grown(segmenter.grid.halo, volume.height, volume.width)
    with volume.lock:
        raw = np.stack([volume.read(z, window) for z in range(depth)])
    rows, cols = core.within(window)
    xz = np.stack([segmenter.probabilities(raw[:, y, :]) for y in range(rows.start, rows.stop)], axis=1)
    yz = np.stack([segmenter.probabilities(raw[:, :, x]) for x in range(cols.start, cols.stop)], axis=2)
    return (xz[:, :, cols] + yz[:, rows, :]) / 2.0


@one_line
def label_block(job: ObjectsJob, row: int, col: int, core: Region, merge: Merge) -> tuple[float, float, float]:
    """Neurons of one block from its fragments (on the working pixel, ``job.pool``) and its part
    of the merge; returns (seconds, 0, peak MB)."""
    start = time.perf_counter()
    store = _store(job)
    cells = core.pooled(job.pool)
    fragments = np.asarray(store.fragments[:, cells.slices[0], cells.slices[1]])
    first = store.first_id(row, col)
    count = max(int(fragments.max(initial=0)) - first, 0)
    neurons = unpooled(merge.apply(fragments, first, count), job.pool, *core.shape, store.neurons.dtype,
                       store.pooled_probability(core), _scratch(fragments.size * job.pool ** 2, store.neurons.dtype))
    store.write_neurons(row, col, core, neurons)
    return time.perf_counter() - start, 0.0, _peak_mb()


def _scratch(size: int, dtype) -> np.ndarray:
    """This worker thread's one buffer for a block's neurons, grown to ``size`` items where
    needed: a fresh 100 MB array per block paid its page faults every time (0.2 s of the
    0.5 s a 100 x 512 x 512 block's neurons took, 2026-12-07, 2-core Intel Xeon)."""
    box = cached(("neurons scratch", np.dtype(dtype).str), lambda: [np.empty(0, dtype)])
    if box[0].size < size:
        box[0] = np.empty(size, dtype)
    return box[0]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
