"""``emseg-lite volume``: a volume on Dask into OME-Zarr, with progress and a throughput line.

Needs the ``volume`` extra (dask.distributed, zarr), checked before any work.
"""
from __future__ import annotations

import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import (
    EXIT_NOTHING_DONE,
    EXIT_SOME_FAILED,
    Accelerator,
    AcceleratorOption,
    ModelOption,
    PixelSizeOption,
    ResampleOption,
    app,
    dask_client,
    error,
    fail,
    load,
    tell_placement,
)
from .neurons import OBJECT_BLOCK, Voxels, run_objects, voxel_geometry


class ProbabilityType(str, Enum):
    uint8 = "uint8"
    float16 = "float16"


@app.command()
def volume(
    input: Annotated[Path, typer.Argument(help="OME-Zarr image, zarr array, multi-page TIFF or folder of sections.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The OME-Zarr to write (e.g. seg.ome.zarr).")],
    workers: Annotated[Optional[int], typer.Option(min=1, help="Local worker processes (default: one per core).")] = None,
    scheduler: Annotated[Optional[str], typer.Option(
        help="Address of a running dask scheduler (tcp://...), e.g. from dask-jobqueue on SLURM.")] = None,
    block: Annotated[Optional[int], typer.Option(
        min=16, help="Block size in pixels (default: as segment: a whole section up to 4096 x 4096, else ~3000).")] = None,
    model: ModelOption = None,
    accelerator: AcceleratorOption = Accelerator.auto,
    threads: Annotated[int, typer.Option(min=1, help="Interpreter threads per worker.")] = 1,
    probabilities: Annotated[Optional[ProbabilityType], typer.Option(
        help="Also store the membrane probability, as uint8 (0-255) or float16.")] = None,
    resample: ResampleOption = False,
    pixel_size_nm: PixelSizeOption = None,
    neurons: Annotated[bool, typer.Option("--neurons", help=(
        "Then 3-D objects: labels/fragments and labels/neurons (as emseg-lite neurons; stores probabilities)."))] = False,
    voxels: Annotated[Voxels, typer.Option(
        help="With --neurons: isotropic (FIB-SEM: xz and yz planes too), anisotropic, or auto.")] = Voxels.auto,
    resume: Annotated[bool, typer.Option("--resume", help="Finish an interrupted run: only blocks not done.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.")] = False,
) -> None:
    """Segment a volume section by section, block by block, on Dask; write OME-Zarr labels."""
    try:
        import distributed  # noqa: F401 -- the extra's packages, checked before any work
        import zarr  # noqa: F401

        from ..formats.volumes import open_volume
        from ..pipelines import volume as engine
    except ImportError as exc:
        raise fail(f"emseg-lite volume needs the volume extra ({exc.name} is missing): "
                    'pip install "emseg-lite[volume]"') from None
    from ..core.errors import EmsegError
    from ..formats.pixelsize import ScaleCheck
    from ..pipelines.blockwise import plan_for

    if scheduler and workers:
        raise fail("--workers starts a local cluster; with --scheduler the cluster is already there")
    if neurons and probabilities is None:
        probabilities = ProbabilityType.uint8  # the objects are made from them
    placed = load(model, threads, accelerator=accelerator)  # the workers run what ran here
    try:
        model_path = placed.net.path.resolve()
        card = placed.card
        source = open_volume(input)
        scale = ScaleCheck(card.training.pixel_size_nm, resample, pixel_size_nm).check(source)
        if pixel_size_nm:
            source.scale = source.scale.with_pixel_size(pixel_size_nm)  # what the OME-Zarr says
        plan = plan_for(card, source.height, source.width, card.postprocessing, block, scale=scale)
        job = engine.Job(str(input.resolve()), str(out.resolve()), str(model_path), threads, card.postprocessing,
                         plan, probabilities.value if probabilities else None, placed.net.accelerator)
        output = engine.open_or_create(job, source, card, resume, overwrite)
    except EmsegError as exc:
        raise fail(exc) from None
    client = engine.local_cluster(workers, threads) if scheduler is None else dask_client(scheduler)
    done_events, failures, objects_failed = [], [], 0
    try:
        events = engine.run(job, output, source, client)
        first = next(events)
        started = time.perf_counter()  # after the workers' warm-up: from the first block to the last
        if not quiet:
            typer.echo(f"{input}: {source.pages} section(s) of {source.width} x {source.height}, "
                       f"{first.total} block(s) of {plan.size} px ({first.done_before} already done), "
                       f"{first.workers} worker(s) ready in {first.warm_up_s:.1f} s", err=True)
            tell_placement(placed)
        with typer.progressbar(length=max(first.total - first.done_before, 1), label="blocks", file=sys.stderr,
                               hidden=quiet, show_eta=True, show_pos=True) as bar:
            for event in events:
                if isinstance(event, engine.BlockFailed):
                    failures.append(event)
                    error(f"{input}: section {event.z}, block row {event.row}, column {event.col}: {event.error}")
                else:
                    done_events.append(event)
                bar.update(1)
        seconds = time.perf_counter() - started
        if not failures:
            failures = _stitch(job, output, source, client, input, quiet)
        if neurons and not failures:
            objects_failed = run_objects(_objects_job(job, card, voxels, source, out), output.group, client, quiet, out)
    finally:
        client.close()
        source.close()
    if not quiet:
        pixels = sum(e.pixels for e in done_events)
        per_worker = engine.summary(done_events)
        peak = max((w["peak_rss_mb"] for w in per_worker.values()), default=0.0)
        typer.echo(f"{len(done_events)} block(s), {pixels / 1e6:.1f} megapixels in {seconds:.1f} s "
                   f"({pixels / 1e6 / max(seconds, 1e-9):.1f} MP/s); {len(per_worker)} worker(s), "
                   f"peak RSS per worker {peak:.0f} MB -> {out}", err=True)
    if failures:
        raise typer.Exit(EXIT_SOME_FAILED if done_events else EXIT_NOTHING_DONE)
    if objects_failed:
        raise typer.Exit(EXIT_SOME_FAILED)


def _stitch(job, output, source, client, input: Path, quiet: bool) -> list:
    """Make region ids seamless across blocks (``pipelines.stitch``), with a progress bar;
    the blocks that failed."""
    from ..pipelines import stitch

    events = stitch.run(job, output, source.height, source.width, client)
    first = next(events, None)
    if first is None:
        return []
    failures = []
    started = time.perf_counter()
    with typer.progressbar(length=max(first.total - first.done_before, 1), label="seams", file=sys.stderr,
                           hidden=quiet, show_pos=True) as bar:
        for event in events:
            if isinstance(event, stitch.StitchFailed):
                failures.append(event)
                error(f"{input}: section {event.z}, block row {event.row}, column {event.col}: "
                      f"joining region ids: {event.error}")
            bar.update(1)
    if not quiet:
        typer.echo(f"region ids joined across {first.total - first.done_before} block(s) in "
                   f"{time.perf_counter() - started:.1f} s", err=True)
    return failures


def _objects_job(job, card, voxels: Voxels, source, out: Path):
    from ..pipelines.neurons import ObjectsJob

    scale = source.scale
    isotropic, pool = voxel_geometry(voxels, {"z": scale.z, "y": scale.y}, card.objects, out)
    return ObjectsJob(job.input, job.output, job.model, job.threads, OBJECT_BLOCK, card.objects.scoring,
                      card.objects.threshold, isotropic, pool)
