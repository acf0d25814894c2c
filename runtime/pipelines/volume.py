"""``emseg-lite volume``: a volume segmented block by block on Dask, resumable.

The client plans blocks over every z section (``blocks``, as ``segment`` does
for one section), creates or reopens the OME-Zarr output (``omezarr``) and
feeds a dask.distributed cluster -- a LocalCluster sized to the machine, or an
existing scheduler (SLURM via dask-jobqueue, Kubernetes, ...) -- with small
tasks that reference the input and output by path: nothing but the two stores
is shared between machines. Each section first gets its intensity range (one
streaming pass, as ``segment`` takes it), then each of its blocks is read,
inferred, post-processed and written by one task (``blockwise``), which marks
the block done only after every write returned.

The graph never grows with the volume: tasks are submitted as earlier ones
finish, a bounded number in flight (dask/dask#11423, funkelab/daisy#63).
Workers load the model once per process and thread, not per block. A worker
that dies has its tasks retried by dask; a block that fails for its own reason
(a corrupt input chunk) is retried, then reported by position, and the rest
goes on. ``--resume`` skips every block already marked done.
"""
from __future__ import annotations

import dataclasses
import os
import resource
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Union

import numpy as np

from ..core.card import PostProcessing
from ..core.errors import EmsegError
from ..core.geometry import Block
from ..engine.intensity import page_range
from ..formats.omezarr import Layout, Output, create, open_for_resume
from ..formats.volumes import VolumeSection, open_volume
from ..post.seams import Edges
from .blocks import BlockPlan
from .blockwise import finish_block, infer_block, start_page

IN_FLIGHT_PER_THREAD = 2
"""Tasks queued per worker thread: enough to keep workers busy, few enough to bound the graph."""
RETRIES = 2


@dataclass(frozen=True)
class Job:
    """What every task needs, by value: small, picklable, the same on every machine."""

    input: str
    output: str
    model: str
    threads: int
    post: PostProcessing
    plan: BlockPlan
    probabilities: str | None
    accelerator: str = "cpu"  # as decided on the client: "cpu" or "gpu", never "auto"


@dataclass
class BlockDone:
    z: int
    row: int
    col: int
    pixels: int
    seconds: float
    worker: str
    peak_rss_mb: float


@dataclass
class BlockFailed:
    z: int
    row: int
    col: int
    error: str


@dataclass
class Started:
    total: int
    done_before: int
    workers: int
    dashboard: str | None
    warm_up_s: float


Event = Union[Started, BlockDone, BlockFailed]


def run(job: Job, output: Output, volume: VolumeSection, client) -> Iterator[Event]:
    """Segment every block not yet done, yielding events as blocks finish."""
    blocks = job.plan.blocks(volume.height, volume.width)
    done = output.done_blocks()
    todo = [(z, b) for z in range(volume.pages) for b in blocks if not done[z, b.row, b.col]]
    workers = client.scheduler_info()["workers"]
    threads = sum(w.get("nthreads", 1) for w in workers.values()) or 1
    warm_up_s = warm_up(client, job, workers) if todo else 0.0
    yield Started(volume.pages * len(blocks), int(done.sum()), len(workers), getattr(client, "dashboard_link", None),
                  warm_up_s)
    ranges: dict[int, object] = {}

    def submissions():
        for z, block in todo:
            if len(blocks) == 1:  # the block reads the whole section anyway: it takes its range itself
                intensity = None
            else:
                if z not in ranges:
                    ranges[z] = client.submit(section_range, job, z, pure=False, retries=RETRIES)
                    for old in [k for k in ranges if k < z - 1]:
                        del ranges[old]
                intensity = ranges[z]
            yield (z, block), client.submit(segment_block, job, z, block, intensity, pure=False, retries=RETRIES)

    for (z, block), future in bounded(submissions(), in_flight(threads)):
        if future.status == "error":
            yield BlockFailed(z, block.row, block.col, first_line(future.exception()))
        else:
            yield BlockDone(z, block.row, block.col, *future.result())


def in_flight(threads: int) -> int:
    return max(2, IN_FLIGHT_PER_THREAD * threads)


def bounded(submissions: Iterator[tuple[object, object]], limit: int) -> Iterator[tuple[object, object]]:
    """(key, future) as futures finish, at most ``limit`` in flight: ``submissions`` is
    advanced -- submitting the next task -- only as one finishes, so the graph stays small."""
    from distributed import as_completed

    flight = as_completed()
    where: dict[object, object] = {}

    def top_up() -> None:
        while len(where) < limit:
            item = next(submissions, None)
            if item is None:
                return
            key, future = item
            where[future] = key
            flight.add(future)

    top_up()
    for future in flight:
        yield where.pop(future), future
        future.release()
        top_up()


def first_line(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def warm_up(client, job: Job, workers: dict) -> float:
    """Seconds for every worker thread to import, load the model on the plan's tile and open
    the stores, all at once before the first block: a one-off per worker (0.5 s here),
    which would otherwise stretch each worker's first block and skew the ETA. A worker
    whose warm-up fails is left to fail its blocks, which report why; one that left the
    cluster meanwhile has its warm-up run by another (a loose restriction, never a hang)."""
    from distributed import wait

    start = time.perf_counter()
    futures = [client.submit(_ready, job, workers=[address], allow_other_workers=True, pure=False)
               for address, info in workers.items() for _ in range(info.get("nthreads", 1))]
    wait(futures)
    for future in futures:
        future.release()
    return time.perf_counter() - start


# --- worker side: everything below runs in the workers' processes ---------------------------------------

_CACHE: dict[tuple, object] = {}
_CACHE_LOCK = threading.Lock()


def cached(key: tuple, make):
    """One object per worker process and thread (interpreters and file handles are not thread-safe)."""
    key = (*key, threading.get_ident())
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = make()
        return _CACHE[key]


def worker_segmenter(model: str, threads: int, accelerator: str = "cpu"):
    from ..engine.amx import forgo_amx
    from .segmenter import Segmenter

    def make():
        forgo_amx()
        return Segmenter.load(model, threads=threads, accelerator=accelerator)

    return cached(("segmenter", model, threads, accelerator), make)


def worker_volume(path: str) -> VolumeSection:
    return cached(("volume", path), lambda: open_volume(path))


def worker_output(job: Job) -> Output:
    import zarr

    return cached(("output", job.output), lambda: Output(Path(job.output), zarr.open_group(job.output, mode="r+")))


def one_line(task):
    """Errors a user can fix travel to the client as one picklable line."""
    def wrapped(*args):
        try:
            return task(*args)
        except EmsegError as exc:
            raise RuntimeError(str(exc)) from None
    wrapped.__name__ = task.__name__
    return wrapped


def _ready(job: Job) -> None:
    segmenter = worker_segmenter(job.model, job.threads, job.accelerator)
    if job.plan.tile:
        segmenter.use_tile(job.plan.tile)
    worker_volume(job.input)
    worker_output(job)


@one_line
def section_range(job: Job, z: int) -> tuple[float, float]:
    """(low, high) intensities of section ``z``, for its normalisation."""
    return page_range(worker_volume(job.input), z, worker_segmenter(job.model, job.threads, job.accelerator).card.normalization)


@one_line
def segment_block(job: Job, z: int, block: Block, intensity: tuple[float, float] | None) -> tuple[int, float, str, float]:
    """Read, infer, post-process and write one block; returns (pixels, seconds, worker, peak RSS MB).

    ``intensity``: the section's range, or None to take it here (a section of one block)."""
    start = time.perf_counter()
    segmenter = worker_segmenter(job.model, job.threads, job.accelerator)
    volume = worker_volume(job.input)
    intensity = intensity or page_range(volume, z, segmenter.card.normalization)
    page = start_page(segmenter, volume, z, *intensity, job.plan)
    done = finish_block(infer_block(segmenter, page, block), job.post,
                        keep_probability=job.probabilities is not None, keep_regions=True)
    output = worker_output(job)
    ids = done.regions.astype(output.regions.dtype)
    np.add(ids, output.first_id(z, block), out=ids, where=ids > 0)
    output.write(z, block, done.membrane, ids, Edges.of(ids).stacked(job.plan.size), done.probability)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return block.core.height * block.core.width, time.perf_counter() - start, f"pid {os.getpid()}", peak_mb


def layout_for(job: Job, volume: VolumeSection, model_sha256: str) -> Layout:
    resampling = job.plan.resampling
    return Layout(str(Path(job.input).resolve()), (volume.pages, volume.height, volume.width), job.plan.size,
                  job.plan.context, model_sha256, dataclasses.asdict(job.post), job.probabilities,
                  resampling.model_shape if resampling else None)


def local_cluster(workers: int | None, threads: int):
    """A LocalCluster of single-threaded worker processes, one per core by default."""
    import logging

    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)  # its start and stop are not news to a user
    count = workers or max(1, len(os.sched_getaffinity(0)) // threads)
    cluster = LocalCluster(n_workers=count, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=40)
    return Client(cluster)


def open_or_create(job: Job, volume: VolumeSection, card, resume: bool, overwrite: bool) -> Output:
    layout = layout_for(job, volume, card.model.sha256)
    path = Path(job.output)
    if resume and path.exists():
        return open_for_resume(path, layout)
    return create(path, layout, volume.scale, card, overwrite)


def summary(events: list[BlockDone]) -> dict:
    """Throughput and memory of a run: megapixels per second per worker, peak RSS per worker."""
    per_worker: dict[str, list[BlockDone]] = {}
    for event in events:
        per_worker.setdefault(event.worker, []).append(event)
    return {worker: {"blocks": len(items), "megapixels": sum(e.pixels for e in items) / 1e6,
                     "seconds": sum(e.seconds for e in items), "peak_rss_mb": max(e.peak_rss_mb for e in items)}
            for worker, items in per_worker.items()}
