"""Which files a run takes, and what their outputs are called.

Shared by ``segment`` (``batch``) and ``watch``: both skip emseg-lite's own
outputs (``OUTPUT_TAGS``) when they look through a folder, name a section's
outputs after it (``<stem>_mask``, ``_prob``, ``_overlay``, ``_regions``) and refuse, before
any work, an output that would overwrite an input, another output of the same
run or -- unless asked -- an existing file.
"""
from __future__ import annotations

import glob
from pathlib import Path

import numpy as np

from ..core.errors import EmsegError, InputError, OutputError
from ..formats import sinks
from ..formats.reader import check_regular_file, image_files
from ..formats.section import MRC_SUFFIXES, TIFF_SUFFIXES, Section

OUTPUT_TAGS = ("_mask", "_prob", "_overlay", "_regions")


def expand_inputs(specs: list[str]) -> tuple[list[Path], list[InputError]]:
    """Files named by paths, folders and glob patterns.

    Folders and patterns skip our own outputs (``*_mask``, ``*_prob``, ``*_regions``,
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


def count_pixels(path: Path) -> int:
    """Pixels to segment in a file, from its header alone (0 if unknown), for progress bars."""
    try:
        check_regular_file(path)  # never open a FIFO: it would wait for a writer forever
        if path.suffix.lower() in MRC_SUFFIXES:
            from ..formats.mrc import mrc_pixels

            return mrc_pixels(path)
        if path.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                return int(np.prod([n for a, n in zip(series.axes, series.shape) if a != "S"], dtype=np.int64))
        from PIL import Image

        with Image.open(path) as im:
            return im.width * im.height
    except Exception:  # a broken file is reported when it is read; here it only counts 0
        return 0


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


def resolved(path: Path) -> Path:
    """``path.resolve()``, or the absolute path where resolving fails (a symlink loop,
    which the file's own reading then reports in one line)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def plan_outputs(section: Section, out_dir: Path | None, probabilities: bool, overlay: bool, overwrite: bool,
                 inputs: set[Path], claimed: set[Path], regions: bool = False) -> dict[str, Path]:
    """A section's output paths by kind (``mask``, and ``prob`` / ``overlay`` / ``regions`` when asked),
    in ``out_dir`` or beside the input; ``inputs`` and ``claimed`` are the resolved paths
    of this run's inputs and of the outputs already given out."""
    folder = out_dir or section.path.parent
    kind = sinks.layout(section.pages, section.height, section.width)
    image_suffix = sinks.suffix(kind)
    wanted = {"mask": image_suffix, "prob": ".tif" if probabilities else None,
              "overlay": image_suffix if overlay else None, "regions": ".tif" if regions else None}
    stem = section.path.stem
    outputs = {name: folder / f"{stem}_{name}{suffix}" for name, suffix in wanted.items() if suffix}
    for target in outputs.values():
        where = resolved(target)
        if where in inputs:
            raise OutputError(target, f"output of {section.path} would overwrite an input; choose another -o folder")
        if where in claimed:
            raise OutputError(target, f"output of {section.path} would overwrite the output of another input of this run")
        if target.exists() and not overwrite:
            raise OutputError(target, "already exists; use --overwrite to replace it")
    return outputs


def open_sinks(section: Section, outputs: dict[str, Path]) -> dict[str, sinks.Sink]:
    """A writer for each planned output: masks and overlays as the section's layout wants
    (PNG, TIFF stack or tiled TIFF), probabilities as float32 and region ids as uint32
    TIFF; all or none."""
    kind = sinks.layout(section.pages, section.height, section.width)
    shape = (section.pages, section.height, section.width)
    scale = {"pixel_size_nm": section.pixel_size_nm}
    opened: dict[str, sinks.Sink] = {}
    try:
        for name, path in outputs.items():
            if name == "mask":
                opened[name] = sinks.open_sink(kind, path, *shape, np.uint8, compress=True, **scale)
            elif name == "prob":
                opened[name] = sinks.open_sink("tiled" if kind == "tiled" else "stack", path, *shape, np.float32,
                                               **scale)
            elif name == "regions":
                opened[name] = sinks.open_sink("tiled" if kind == "tiled" else "stack", path, *shape, np.uint32,
                                               compress=True, **scale)
            else:
                opened[name] = sinks.open_sink(kind, path, *shape, np.uint8, rgb=True, compress=True, **scale)
    except EmsegError:
        for sink in opened.values():
            sink.abort()
        raise
    return opened
