"""Segmenting many files, one event per step (``outputs`` expands the inputs and names the outputs).

``run`` yields events (a block, a section, a file done or failed) so that the
CLI can draw progress and a timing summary without this module printing
anything. A failing file is reported as ``FileFailed`` and the rest carry on;
a failed file leaves none of its outputs. Outputs are checked before any work
is done (they must not overwrite an input, an output of this run, or -- unless
``overwrite`` -- an existing file) and appear atomically when complete.

Every section goes through the block-wise core (``blockwise``): small ones as
one block, big ones block by block in bounded memory, written as they go.
"""
from __future__ import annotations

import dataclasses
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Union

import numpy as np

from ..core.card import PostProcessing
from ..core.errors import EmsegError, InputError
from ..formats import sinks
from ..formats.pixelsize import ScaleCheck
from ..formats.reader import open_section
from ..formats.section import DEFAULT_MAX_PIXELS, Section
from .blockwise import Finished, finish_block, infer_block, plan_for, prepare_page
from .outputs import open_sinks, plan_outputs, resolved
from .regionids import PageIds, id_store
from .segmenter import Segmenter
from .workers import Workers

OVERLAY_COLOUR = (255, 0, 255)


@dataclass(frozen=True)
class Options:
    out_dir: Path | None = None
    post: PostProcessing | None = None
    probabilities: bool = False
    overlay: bool = False
    regions: bool = False
    """Also write each section's region ids (``regionids``: seamless across blocks)."""
    overwrite: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    block: int | None = None
    """Block size in pixels (None: one block up to 4096 x 4096 px, else ~3000 px)."""
    workers: int = 1
    """Threads segmenting blocks at once, each with its own interpreter."""
    fixed_tile: bool = False
    """Keep the segmenter's tile for every section (else larger sections get larger tiles)."""
    resample: bool = False
    """Run the network at the model's pixel size on inputs of a known other one (``resample``)."""
    pixel_size_nm: float | None = None
    """The inputs' pixel size where their files do not say it."""


@dataclass
class BlockDone:
    path: Path
    page: int
    pixels: int


@dataclass
class SliceDone:
    path: Path
    page: int
    seconds: dict[str, float]


@dataclass
class FileDone:
    path: Path
    outputs: list[Path]
    notes: list[str] = field(default_factory=list)


@dataclass
class FileFailed:
    path: Path
    error: EmsegError


Event = Union[BlockDone, SliceDone, FileDone, FileFailed]


def run(segmenter: Segmenter, files: list[Path], options: Options) -> Iterator[Event]:
    """Segment ``files`` in order, yielding events in order.

    Blocks -- a small slice is one -- go to ``options.workers`` threads, each
    with an interpreter of its own, which read, infer and post-process them
    (the interpreter and the compiled watershed both release the GIL); this
    thread plans, writes the results in order and reports. On 2 cores, two
    single-threaded workers beat one two-threaded interpreter with a separate
    post-processing thread: a folder of ISBI slices took 26 instead of 31-34 ms
    per slice with the watershed, 20-23 instead of 24-28 without.
    """
    inputs = {resolved(p) for p in files}
    claimed: set[Path] = set()
    scale = ScaleCheck(segmenter.card.training.pixel_size_nm, options.resample, options.pixel_size_nm)
    with Workers(segmenter, options.workers) as workers:
        pending: deque[tuple[Future, Callable]] = deque()
        for path in files:
            for task in _submit_file(segmenter, workers, path, options, inputs, claimed, scale):
                pending.append(task)
                while len(pending) > workers.count + 1 or (pending and pending[0][0].done()):
                    yield from _handle(*pending.popleft())
        while pending:
            yield from _handle(*pending.popleft())


def _handle(future: Future, then: Callable) -> list[Event]:
    """Run ``then`` on a finished task's result, in order, in the calling thread."""
    try:
        result = future.result()
    except EmsegError as exc:
        return then(exc)
    return then(result)


@dataclass
class _FileWork:
    """One input file's outputs and state, touched only by the calling thread."""

    section: Section
    outputs: dict[str, Path]
    post: PostProcessing
    to_mask: Callable[[np.ndarray], np.ndarray]
    """Bool membrane map -> the uint8 mask written: ``Segmenter.to_mask``, the card's polarity."""
    sinks: dict[str, sinks.Sink]
    ids: PageIds | None = None
    """The open page's region ids, with ``Options.regions``."""
    last_id: int = 0
    """The last region id of the pages before (ids are unique across a stack)."""
    failed: bool = False
    seconds: dict[str, float] = field(default_factory=lambda: {"read": 0.0, "infer": 0.0, "post": 0.0})

    def fail(self, error: EmsegError) -> list[Event]:
        """Abandon every output of this file (once) and report it."""
        if self.failed:
            return []
        self.failed = True
        for sink in self.sinks.values():
            sink.abort()
        self.ids = None
        return [FileFailed(self.section.path, error)]


def _submit_file(segmenter: Segmenter, workers: Workers, path: Path, options: Options, inputs: set[Path],
                 claimed: set[Path], scale: ScaleCheck) -> Iterator[tuple[Future, Callable]]:
    """The steps of one file, each a task (or a finished future) and what to do with its
    result in the calling thread; the last step commits or abandons the outputs and
    closes the file, after every block of it has been read."""
    try:
        section = open_section(path, options.max_pixels)
    except EmsegError as exc:
        yield _completed(exc), lambda error: [FileFailed(path, error)]
        return
    try:
        factor = scale.check(section)
        outputs = plan_outputs(section, options.out_dir, options.probabilities, options.overlay,
                               options.overwrite, inputs, claimed, options.regions)
        claimed.update(resolved(p) for p in outputs.values())
        work = _FileWork(section, outputs, options.post or segmenter.card.postprocessing, segmenter.to_mask,
                         open_sinks(section, outputs))
    except EmsegError as exc:
        section.close()
        yield _completed(exc), lambda error: [FileFailed(path, error)]
        return
    plan = plan_for(segmenter.card, section.height, section.width, work.post, options.block, segmenter.grid.halo,
                    factor)
    if options.fixed_tile:
        plan = dataclasses.replace(plan, tile=None)
    try:
        for index in range(section.pages):
            start = time.perf_counter()
            try:
                page = prepare_page(segmenter, section, index, plan)
            except EmsegError as exc:
                yield _completed(exc), work.fail
                break
            work.seconds["read"] += time.perf_counter() - start
            for block in page.blocks:
                if work.failed:
                    break
                task = workers.pool.submit(_segment_block, workers, page, block, work.post, options)
                yield task, lambda result, work=work: _written(work, result)
            if work.failed:
                break
            yield _completed(index), lambda index, work=work: _end_page(work, index)
    except BaseException:  # interrupted (Ctrl-C, or the caller stopped listening): leave nothing behind
        work.fail(InputError(path, "interrupted"))
        raise
    yield _completed(None), lambda _, work=work: _close(work)


def _segment_block(workers: Workers, page, block, post: PostProcessing, options: Options):
    """In a worker: read, infer and post-process one block."""
    segmenter = workers.segmenter()
    start = time.perf_counter()
    with workers.inference():
        inferred = infer_block(segmenter, page, block, keep_pixels=options.overlay)
    middle = time.perf_counter()
    done = finish_block(inferred, post, keep_probability=options.probabilities, keep_regions=options.regions)
    return done, middle - start, time.perf_counter() - middle


def _written(work: _FileWork, result) -> list[Event]:
    if work.failed:
        return []
    if isinstance(result, EmsegError):
        return work.fail(result)
    done, infer_seconds, post_seconds = result
    work.seconds["infer"] += infer_seconds
    work.seconds["post"] += post_seconds
    try:
        _write(work, done)
    except EmsegError as exc:
        return work.fail(exc)
    return [BlockDone(work.section.path, done.page.index, done.block.core.height * done.block.core.width)]


def _write(work: _FileWork, done: Finished) -> None:
    page, region = done.page.index, done.block.core
    work.sinks["mask"].write(page, region, work.to_mask(done.membrane))
    if "prob" in work.sinks:
        work.sinks["prob"].write(page, region, done.probability)
    if "overlay" in work.sinks:
        rgb = np.repeat((done.gray * 255).astype(np.uint8)[..., np.newaxis], 3, axis=-1)
        rgb[done.membrane] = OVERLAY_COLOUR
        work.sinks["overlay"].write(page, region, rgb)
    if "regions" in work.sinks:
        if work.ids is None:
            shape = (work.section.height, work.section.width)
            store = id_store(shape, done.page.plan.count(*shape), work.sinks["regions"].path)
            work.ids = PageIds(store, work.last_id)
        work.ids.put(done)


def _end_page(work: _FileWork, index: int) -> list[Event]:
    if work.failed:
        return []
    try:
        if work.ids is not None:
            for core in work.ids.finish():
                work.sinks["regions"].write(index, core, work.ids.store[core.slices])
            work.last_id, work.ids = work.ids.last, None
        for sink in work.sinks.values():
            sink.end_page(index)
    except EmsegError as exc:
        return work.fail(exc)
    seconds, work.seconds = work.seconds, {"read": 0.0, "infer": 0.0, "post": 0.0}
    return [SliceDone(work.section.path, index, seconds)]


def _close(work: _FileWork) -> list[Event]:
    """Commit every output, or none if the file failed; then close the input."""
    try:
        return [] if work.failed else _commit(work)
    finally:
        work.section.close()


def _commit(work: _FileWork) -> list[Event]:
    """Make every output appear, or none: a later failure removes the ones already in place."""
    start = time.perf_counter()
    committed: list[Path] = []
    for name, sink in work.sinks.items():
        try:
            sink.commit()
        except EmsegError as exc:
            for path in committed:
                path.unlink(missing_ok=True)
            work.sinks = {k: s for k, s in work.sinks.items() if s.path not in committed and k != name}
            return work.fail(exc)
        committed.append(sink.path)
    section = work.section
    return [SliceDone(section.path, -1, {"write": time.perf_counter() - start}),
            FileDone(section.path, list(work.outputs.values()), section.notes)]


def _completed(value) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


