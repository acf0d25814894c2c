"""Segmenting many files: expanding inputs, naming outputs, one event per step.

``run`` yields an event per section and per file so that the CLI can draw a
progress bar and a timing summary without this module printing anything. A
failing file is reported as ``FileFailed`` and the rest carry on. Outputs are
checked before any work is done (they must not overwrite an input, an output of
this run, or -- unless ``overwrite`` -- an existing file) and written atomically.
"""
from __future__ import annotations

import glob
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Union

import numpy as np

from .card import PostProcessing
from .datasets import image_files
from .errors import EmsegError, InputError, OutputError
from .intensity import intensity_range, normalize
from .io import DEFAULT_MAX_PIXELS, TIFF_SUFFIXES, Slices, read_slices, write_mask, write_overlay, write_probabilities
from .segmenter import Segmenter

OUTPUT_TAGS = ("_mask", "_prob", "_overlay")


@dataclass(frozen=True)
class Options:
    out_dir: Path | None = None
    post: PostProcessing | None = None
    probabilities: bool = False
    overlay: bool = False
    overwrite: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS


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


Event = Union[SliceDone, FileDone, FileFailed]


def expand_inputs(specs: list[str]) -> tuple[list[Path], list[InputError]]:
    """Files named by paths, folders and glob patterns.

    Folders and patterns skip our own outputs (``*_mask``, ``*_prob``,
    ``*_overlay``), so re-running on a folder does not segment its masks;
    a file named explicitly is always taken.
    """
    files: list[Path] = []
    errors: list[InputError] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            found = [p for p in image_files(path) if not p.stem.endswith(OUTPUT_TAGS)]
            if not found:
                errors.append(InputError(path, "no images (.png, .jpg, .tif) in this folder"))
            files.extend(found)
        elif not path.exists() and glob.has_magic(spec):
            found = sorted(p for p in map(Path, glob.glob(spec)) if p.is_file() and not p.stem.endswith(OUTPUT_TAGS))
            if not found:
                errors.append(InputError(spec, "no files match this pattern"))
            files.extend(found)
        else:
            files.append(path)
    unique = list(dict.fromkeys(files))
    return unique, errors


def count_sections(path: Path) -> int:
    """Sections in a file from its header alone (1 if unknown), for progress bars."""
    if path.suffix.lower() in TIFF_SUFFIXES:
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                return int(np.prod([n for a, n in zip(series.axes, series.shape) if a not in "YXS"], dtype=np.int64))
        except (tifffile.TiffFileError, OSError, ValueError, IndexError):
            return 1  # a broken file is reported when it is read
    return 1


def check_out_dir(out_dir: Path) -> None:
    """Create ``out_dir`` if needed and make sure we can write into it."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(out_dir, "output path exists and is not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(out_dir, f"cannot create output folder ({exc.strerror})") from None
    probe = out_dir / ".emseg-lite-write-test"
    try:
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise OutputError(out_dir, f"output folder is not writable ({exc.strerror})") from None


def run(segmenter: Segmenter, files: list[Path], options: Options) -> Iterator[Event]:
    """Segment ``files`` in order, yielding events in order.

    Two stages overlap: the calling thread reads slices and runs the network
    (which releases the GIL), one worker thread post-processes and writes the
    previous slice. On two cores this takes the post-processing and the PNG
    writing off the critical path of a folder of slices.
    """
    inputs = {p.resolve() for p in files}
    claimed: set[Path] = set()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="emseg-finish") as finisher:
        pending: deque[Future] = deque()
        for path in files:
            for task in _submit_file(segmenter, path, options, inputs, claimed, finisher):
                pending.append(task)
                while len(pending) > 2 or (pending and pending[0].done()):
                    yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()


@dataclass
class _FileWork:
    """What the finishing thread accumulates for one input file."""

    slices: Slices
    outputs: dict[str, Path]
    post: PostProcessing
    masks: list[np.ndarray] = field(default_factory=list)
    probabilities: list[np.ndarray] = field(default_factory=list)
    membranes: list[np.ndarray] = field(default_factory=list)


def _submit_file(segmenter: Segmenter, path: Path, options: Options, inputs: set[Path], claimed: set[Path],
                 finisher: ThreadPoolExecutor) -> Iterator[Future]:
    start = time.perf_counter()
    try:
        slices = read_slices(path, options.max_pixels)
        outputs = _plan_outputs(slices, options, inputs, claimed)
    except EmsegError as exc:
        yield _completed([FileFailed(path, exc)])
        return
    claimed.update(p.resolve() for p in outputs.values())
    read_s = (time.perf_counter() - start) / len(slices.pages)
    work = _FileWork(slices, outputs, options.post or segmenter.card.postprocessing)
    for page, image in enumerate(slices.pages):
        t0 = time.perf_counter()
        probability = segmenter.probabilities(image)
        seconds = {"read": read_s, "infer": time.perf_counter() - t0}
        yield finisher.submit(_finish_slice, segmenter, work, page, probability, seconds, options)
    yield finisher.submit(_write_file, segmenter, work, options)


def _finish_slice(segmenter: Segmenter, work: _FileWork, page: int, probability: np.ndarray,
                  seconds: dict[str, float], options: Options) -> list[Event]:
    start = time.perf_counter()
    membrane = segmenter.membrane(probability, work.post)
    work.masks.append(segmenter.to_mask(membrane))
    if options.probabilities:
        work.probabilities.append(probability)
    if options.overlay:
        work.membranes.append(membrane)
    return [SliceDone(work.slices.path, page, {**seconds, "post": time.perf_counter() - start})]


def _write_file(segmenter: Segmenter, work: _FileWork, options: Options) -> list[Event]:
    start = time.perf_counter()
    slices, outputs = work.slices, work.outputs
    try:
        write_mask(outputs["mask"], np.stack(work.masks), slices.is_stack)
        if options.probabilities:
            write_probabilities(outputs["prob"], np.stack(work.probabilities))
        if options.overlay:
            write_overlay(outputs["overlay"], _gray(slices, segmenter), np.stack(work.membranes), slices.is_stack)
    except EmsegError as exc:
        return [FileFailed(slices.path, exc)]
    return [SliceDone(slices.path, -1, {"write": time.perf_counter() - start}),
            FileDone(slices.path, list(outputs.values()), slices.notes)]


def _completed(events: list[Event]) -> Future:
    future: Future = Future()
    future.set_result(events)
    return future


def _plan_outputs(slices: Slices, options: Options, inputs: set[Path], claimed: set[Path]) -> dict[str, Path]:
    folder = options.out_dir or slices.path.parent
    image_suffix = ".tif" if slices.is_stack else ".png"
    wanted = {"mask": image_suffix, "prob": ".tif" if options.probabilities else None,
              "overlay": image_suffix if options.overlay else None}
    outputs = {kind: folder / f"{slices.path.stem}_{kind}{suffix}" for kind, suffix in wanted.items() if suffix}
    for target in outputs.values():
        resolved = target.resolve()
        if resolved in inputs:
            raise OutputError(target, f"output of {slices.path} would overwrite an input; choose another -o folder")
        if resolved in claimed:
            raise OutputError(target, f"output of {slices.path} would overwrite the output of another input of this run")
        if target.exists() and not options.overwrite:
            raise OutputError(target, "already exists; use --overwrite to replace it")
    return outputs


def _gray(slices: Slices, segmenter: Segmenter) -> np.ndarray:
    """Slices mapped to [0, 1] with the model's own normalisation, for overlays."""
    spec = segmenter.card.normalization
    return np.stack([normalize(page, *intensity_range(page, spec)) for page in slices.pages])
