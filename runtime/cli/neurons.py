"""``emseg-lite neurons``: 3-D objects (``labels/neurons``) of a volume output, on Dask.

Also the last step of ``emseg-lite volume --neurons``. Needs the ``volume`` extra
(dask.distributed, zarr, waterz), checked before any work.
"""
from __future__ import annotations

import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import EXIT_SOME_FAILED, ModelOption, app, dask_client, error, fail

OBJECT_BLOCK = 512
"""Object blocks span every section and this many pixels a side: 100 sections of 512 x 512
hold ~1 GB of waterz's arrays, which two workers share a 24 GB machine with."""


class Scoring(str, Enum):
    """``post.objects.SCORINGS``: what a face between two fragments scores."""

    mean = "mean"
    quantile_50 = "quantile-50"
    quantile_75 = "quantile-75"


class Voxels(str, Enum):
    auto = "auto"
    isotropic = "isotropic"
    anisotropic = "anisotropic"


def voxel_geometry(voxels: Voxels, voxel_size: dict, objects, name) -> tuple[bool, int]:
    """(whether to look at xz and yz planes too, the xy pooling of the objects' working
    pixel): as asked, else from the stored voxel size (a note when the section spacing
    is unknown: taken for serial sections, the card's ``serial_pool``)."""
    from ..post.objects import xy_pool

    z, y = voxel_size.get("z"), voxel_size.get("y")
    if voxels is Voxels.auto and not (z and y):
        typer.echo(f"{name}: section spacing unknown: taken as serial sections (xy only, "
                   f"pooled {objects.serial_pool} x {objects.serial_pool}); --voxels isotropic for FIB-SEM",
                   err=True)
    isotropic = voxels is Voxels.isotropic if voxels is not Voxels.auto else \
        bool(z and y) and z <= objects.isotropic_ratio * y
    return isotropic, xy_pool(z, y, isotropic, objects.serial_pool)


@app.command()
def neurons(
    output: Annotated[Path, typer.Argument(help="An output of emseg-lite volume, with --probabilities.")],
    threshold: Annotated[Optional[float], typer.Option(
        min=0.0, max=1.0, help="Merge fragments while their face scores below this (default: card).")] = None,
    voxels: Annotated[Voxels, typer.Option(
        help="isotropic (FIB-SEM: xz and yz planes too), anisotropic, or auto from the voxel size.")] = Voxels.auto,
    scoring: Annotated[Optional[Scoring], typer.Option(
        help="Face score: 1 - mean, median or upper-quartile affinity (default: card).")] = None,
    block: Annotated[int, typer.Option(min=64, help="Object block size in pixels (every section deep).")] = OBJECT_BLOCK,
    model: ModelOption = None,
    workers: Annotated[Optional[int], typer.Option(min=1, help="Local worker processes (default: one per core).")] = None,
    scheduler: Annotated[Optional[str], typer.Option(help="Address of a running dask scheduler (tcp://...).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.")] = False,
) -> None:
    """Fragments, merge history and neurons (labels/neurons) of a segmented volume; again with
    another --threshold to rewrite the neurons from the stored history."""
    zarr = _extra()
    from ..core.card import ModelCard, card_path_for
    from ..core.errors import EmsegError
    from ..engine import registry
    from ..pipelines.neurons import ObjectsJob

    try:
        group = zarr.open_group(str(output), mode="r+")
        attrs = group.attrs["emseg-lite"]
    except Exception:
        raise fail(f"{output}: not an output of emseg-lite volume") from None
    if "probabilities" not in group:
        raise fail(f"{output}: has no probabilities; run emseg-lite volume with --probabilities (or --neurons)")
    if not group["done"][...].all():
        raise fail(f"{output}: not every block is segmented; finish it with emseg-lite volume --resume")
    try:
        model_path = registry.resolve(model).resolve()
        card = ModelCard.load(card_path_for(model_path))
    except EmsegError as exc:
        raise fail(exc) from None
    isotropic, pool = voxel_geometry(voxels, attrs.get("voxel_size", {}), card.objects, output)
    if isotropic and card.model.sha256 != attrs["model"]["sha256"]:
        raise fail(f"{output}: segmented with {attrs['model']['file']}; pass it as --model for the xz and yz planes")
    job = ObjectsJob(attrs["layout"]["input"], str(output.resolve()), str(model_path), 1, block,
                     scoring.value if scoring else card.objects.scoring,
                     card.objects.threshold if threshold is None else threshold, isotropic, pool)
    client = _client(workers, scheduler)
    try:
        failures = run_objects(job, group, client, quiet, output)
    finally:
        client.close()
    if failures:
        raise typer.Exit(EXIT_SOME_FAILED)


def run_objects(job, group, client, quiet: bool, name) -> int:
    """The three steps with progress; 0 when all went well, else the number of failed blocks."""
    from ..core.errors import EmsegError
    from ..formats.objectstore import open_objects
    from ..pipelines import neurons as engine

    try:
        shape = group["labels/membrane/0"].shape
        store = open_objects(Path(job.output), group, job.parameters(), engine.object_grid(*shape[1:], job.block, job.pool))
    except EmsegError as exc:
        raise fail(exc) from None
    failed = 0
    bar = None
    views = objects = peak = 0.0
    started = time.perf_counter()
    for event in engine.run(job, store, client):
        if isinstance(event, engine.Started):
            if bar is not None:
                bar.__exit__(None, None, None)
            bar = typer.progressbar(length=max(event.total - event.done_before, 1), label=event.step,
                                    file=sys.stderr, hidden=quiet, show_pos=True)
            bar.__enter__()
        elif isinstance(event, engine.GraphDone):
            if not quiet:
                typer.echo(f"  graph: {event.fragments} fragments, {event.merges} merges in {event.seconds:.1f} s",
                           err=True)
        elif isinstance(event, engine.BlockFailed):
            failed += 1
            error(f"{name}: {event.step}, block row {event.row}, column {event.col}: {event.error}")
            bar.update(1)
        else:
            views += event.view_seconds
            objects += event.seconds - event.view_seconds
            peak = max(peak, event.peak_rss_mb)
            bar.update(1)
    if bar is not None:
        bar.__exit__(None, None, None)
    if not quiet and not failed:
        how = "isotropic: xy, xz and yz planes" if job.isotropic else \
            f"xy sections, graph on {job.pool} x {job.pool} pixels"
        typer.echo(f"neurons at threshold {job.threshold} ({how}) in {time.perf_counter() - started:.1f} s; "
                   f"worker time: {objects:.1f} s fragments, merges and neurons"
                   + (f", {views:.1f} s network on xz and yz planes" if job.isotropic else "")
                   + f"; peak RSS per worker {peak:.0f} MB -> {name}/labels/neurons", err=True)
    return failed


def _extra():
    try:
        import distributed  # noqa: F401 -- the extra's packages, checked before any work
        import waterz  # noqa: F401
        import zarr
    except ImportError as exc:
        raise fail(f"emseg-lite neurons needs the volume extra ({exc.name} is missing): "
                   'pip install "emseg-lite[volume]"') from None
    return zarr


def _client(workers: int | None, scheduler: str | None):
    from ..pipelines import volume as engine

    if scheduler and workers:
        raise fail("--workers starts a local cluster; with --scheduler the cluster is already there")
    return engine.local_cluster(workers, 1) if scheduler is None else dask_client(scheduler)
