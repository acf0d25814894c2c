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
    inputs = {p.resolve() for p in files}
    claimed: set[Path] = set()
    for path in files:
        try:
            yield from _run_file(segmenter, path, options, inputs, claimed)
        except EmsegError as exc:
            yield FileFailed(path, exc)


def _run_file(segmenter: Segmenter, path: Path, options: Options, inputs: set[Path], claimed: set[Path]):
    start = time.perf_counter()
    slices = read_slices(path, options.max_pixels)
    read_s = (time.perf_counter() - start) / len(slices.pages)
    outputs = _plan_outputs(slices, options, inputs, claimed)
    post = options.post or segmenter.card.postprocessing
    masks, probabilities, membranes = [], [], []
    for page, image in enumerate(slices.pages):
        t0 = time.perf_counter()
        probability = segmenter.probabilities(image)
        t1 = time.perf_counter()
        membrane = segmenter.membrane(probability, post)
        masks.append(segmenter.to_mask(membrane))
        t2 = time.perf_counter()
        if options.probabilities:
            probabilities.append(probability)
        if options.overlay:
            membranes.append(membrane)
        yield SliceDone(path, page, {"read": read_s, "infer": t1 - t0, "post": t2 - t1})
    t3 = time.perf_counter()
    write_mask(outputs["mask"], np.stack(masks), slices.is_stack)
    if options.probabilities:
        write_probabilities(outputs["prob"], np.stack(probabilities))
    if options.overlay:
        write_overlay(outputs["overlay"], _gray(slices, segmenter), np.stack(membranes), slices.is_stack)
    claimed.update(p.resolve() for p in outputs.values())
    yield SliceDone(path, -1, {"write": time.perf_counter() - t3})
    yield FileDone(path, list(outputs.values()), slices.notes)


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
