"""``emseg-lite segment``: masks of images, stacks, folders and patterns, with progress and a timing summary.

A thin layer over ``pipelines.batch``: expand the inputs, size the workers, print
what ``batch.run`` reports, set the exit code (0 all done, 1 some inputs failed,
2 nothing done).
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from .common import (
    EXIT_NOTHING_DONE,
    EXIT_SOME_FAILED,
    Accelerator,
    AcceleratorOption,
    ModelOption,
    PixelSizeOption,
    Post,
    ResampleOption,
    ThreadsOption,
    app,
    error,
    fail,
    load,
    tell_placement,
)


@app.command()
def segment(
    inputs: Annotated[List[str], typer.Argument(help="Images (PNG, JPEG, TIFF incl. stacks), folders or glob patterns.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o",
                                                help="Folder for the outputs (default: beside each input).")] = None,
    model: ModelOption = None,
    accelerator: AcceleratorOption = Accelerator.auto,
    threads: ThreadsOption = None,
    tile: Annotated[Optional[int], typer.Option(min=1, help="Tile size in pixels (default: from the model card).")] = None,
    overlap: Annotated[Optional[int], typer.Option(min=0, help="Halo cropped from each tile side (default: card).")] = None,
    threshold: Annotated[Optional[float], typer.Option(min=0.0, max=1.0,
                                                       help="Membrane probability threshold (default: card).")] = None,
    post: Annotated[Optional[Post], typer.Option(help="Post-processing (default: card).")] = None,
    probabilities: Annotated[bool, typer.Option("--probabilities", help="Also write <name>_prob.tif (float membrane probability).")] = False,
    overlay: Annotated[bool, typer.Option("--overlay", help="Also write <name>_overlay.png (membranes drawn on the slice).")] = False,
    regions: Annotated[bool, typer.Option("--regions", help=(
        "Also write <name>_regions.tif: uint32 ids of the cells' regions (0 on membrane), seamless across blocks."
    ))] = False,
    delegate: Annotated[Optional[str], typer.Option(help="Load a TFLite delegate library (e.g. the GPU delegate).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.")] = False,
    max_pixels: Annotated[Optional[int], typer.Option(
        min=1, help="Refuse slices with more pixels, as decompression bombs (default: 2^30, 32768 x 32768).")] = None,
    block: Annotated[Optional[int], typer.Option(
        min=16, help="Block size in pixels for big sections (default: whole up to 4096 x 4096, else ~3000).")] = None,
    resample: ResampleOption = False,
    pixel_size_nm: PixelSizeOption = None,
) -> None:
    """Write <name>_mask.png (or .tif for stacks): 0 = membrane, 255 = cell, with the card's polarity."""
    from ..core.errors import EmsegError
    from ..engine.model import default_threads
    from ..pipelines import batch, outputs

    files, problems = outputs.expand_inputs(inputs)
    for problem in problems:
        error(problem)
    if not files:
        raise typer.Exit(EXIT_NOTHING_DONE)
    total = sum(outputs.count_pixels(p) for p in files)  # from headers: sizes the workers and the progress bar
    workers, interpreter_threads = _workers(len(files), total, threads, delegate)
    segmenter = load(model, interpreter_threads, delegate, tile, overlap, accelerator)
    if segmenter.net.accelerator == "gpu":  # one model on the GPU, post-processing on every core beside it
        workers = threads or default_threads()
    if out is not None:  # made once the model is known to load: a refusal leaves nothing behind
        try:
            outputs.check_out_dir(out)
        except EmsegError as exc:
            raise fail(exc) from None
    options = batch.Options(
        out_dir=out, post=segmenter.postprocessing(post.value if post else None, threshold),
        probabilities=probabilities, overlay=overlay, regions=regions, overwrite=overwrite, block=block, fixed_tile=tile is not None,
        workers=workers, resample=resample, pixel_size_nm=pixel_size_nm,
        **({"max_pixels": max_pixels} if max_pixels else {}),
    )
    done, failed, timings = _run_batch(batch, segmenter, files, options, quiet, total)
    if not quiet and done:
        typer.echo(_summary(timings, done), err=True)
    if done == 0:
        raise typer.Exit(EXIT_NOTHING_DONE)
    if failed or problems:
        raise typer.Exit(EXIT_SOME_FAILED)


def _workers(files: int, pixels: int, threads, delegate) -> tuple[int, int]:
    """(block workers, interpreter threads each): one interpreter per core when there
    is more than one block to run at once, else one interpreter on every core (a
    single slice, or a delegate, which runs on its accelerator)."""
    from ..engine.model import default_threads
    from ..pipelines.blocks import SINGLE_BLOCK_PIXELS

    threads = threads or default_threads()
    if delegate or (files < 2 and pixels <= SINGLE_BLOCK_PIXELS):
        return 1, threads
    return threads, 1


PROGRESS_PIXELS = 4 * 1024 * 1024
"""Runs with more pixels than this show a progress bar (pixels done, ETA); one slice does not."""


def _run_batch(batch, segmenter, files, options, quiet, total):
    timings: dict[str, list[float]] = {"read": [], "infer": [], "post": [], "write": []}
    done = failed = 0
    started = time.perf_counter()
    hidden = quiet or (len(files) < 2 and total <= PROGRESS_PIXELS)
    with typer.progressbar(length=max(total, 1), label="segmenting", file=sys.stderr, hidden=hidden,
                           show_percent=True, show_eta=True) as bar:
        for event in batch.run(segmenter, files, options):
            if isinstance(event, batch.BlockDone):
                bar.update(event.pixels)
            elif isinstance(event, batch.SliceDone):
                for key, seconds in event.seconds.items():
                    timings[key].append(seconds)
            elif isinstance(event, batch.FileDone):
                done += 1
                if not quiet and done == 1:
                    tell_placement(segmenter)
                if not quiet:
                    notes = f" ({'; '.join(event.notes)})" if event.notes else ""
                    typer.echo(f"{event.path} -> {', '.join(str(p) for p in event.outputs)}{notes}")
            else:
                failed += 1
                error(event.error)
    timings["total"] = [time.perf_counter() - started]
    return done, failed, timings


def _summary(timings: dict[str, list[float]], files: int) -> str:
    slices = len(timings["infer"])
    parts = ", ".join(f"{k} {1000 * statistics.median(v):.0f} ms" for k, v in timings.items() if v and k != "total")
    total = timings["total"][0]
    return (f"{slices} slice(s) from {files} file(s) in {total:.2f} s ({1000 * total / max(slices, 1):.0f} ms per slice; "
            f"median stages, which overlap: {parts})")
