"""``emseg-lite``: membrane masks of EM slices from the command line.

A thin layer over ``Segmenter`` and ``batch``: parse, call, print, set the exit
code (0 all done, 1 some inputs failed, 2 usage error or nothing processed).
Heavy modules are imported inside the commands so ``--help`` stays instant.
"""
from __future__ import annotations

import json
import logging
import statistics
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from . import __version__

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    help="Membrane maps of electron-microscopy slices (0 = membrane, 255 = cell) with a small TFLite U-Net.",
)

EXIT_OK, EXIT_SOME_FAILED, EXIT_NOTHING_DONE = 0, 1, 2


class Post(str, Enum):
    none = "none"
    watershed = "watershed"


class LabelKind(str, Enum):
    """``labels.KINDS``, as choices the CLI can list without importing numpy."""

    auto = "auto"
    membrane = "membrane"
    instances = "instances"


class Metric(str, Enum):
    """``metrics.METRICS``."""

    isbi = "isbi"
    adapted = "adapted"


def _error(message: object) -> None:
    typer.echo(f"error: {message}", err=True)


def _fail(message: object) -> typer.Exit:
    _error(message)
    return typer.Exit(EXIT_NOTHING_DONE)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"emseg-lite {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Show the version and exit.")] = None,
) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    # tifffile logs what it finds odd in a file; our one-line error says what matters.
    logging.getLogger("tifffile").setLevel(logging.CRITICAL)


ModelOption = Annotated[Optional[str], typer.Option(
    "--model", "-m", help="A .tflite file (its .json card beside it) or an embedded model: int8 (default), float16, float32.")]
ThreadsOption = Annotated[Optional[int], typer.Option(min=1, help="Interpreter threads (default: all cores).")]
ResampleOption = Annotated[bool, typer.Option(
    "--resample", help="Run the network at the model's pixel size (inputs' from their metadata or --pixel-size-nm); "
                       "outputs stay on the inputs' grid. Off by default: see README, pixel size.")]
PixelSizeOption = Annotated[Optional[float], typer.Option(
    "--pixel-size-nm", min=0.01, help="The inputs' pixel size in nm, where their files do not say it.")]


def _load(model, threads, delegate=None, tile=None, overlap=None):
    from .amx import forgo_amx
    from .errors import EmsegError
    from .segmenter import Segmenter

    forgo_amx()
    try:
        return Segmenter.load(model, threads=threads, delegate=delegate, tile=tile, overlap=overlap)
    except (EmsegError, ValueError) as exc:
        raise _fail(exc) from None


@app.command()
def segment(
    inputs: Annotated[List[str], typer.Argument(help="Images (PNG, JPEG, TIFF incl. stacks), folders or glob patterns.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o",
                                                help="Folder for the outputs (default: beside each input).")] = None,
    model: ModelOption = None,
    threads: ThreadsOption = None,
    tile: Annotated[Optional[int], typer.Option(min=1, help="Tile size in pixels (default: from the model card).")] = None,
    overlap: Annotated[Optional[int], typer.Option(min=0, help="Halo cropped from each tile side (default: card).")] = None,
    threshold: Annotated[Optional[float], typer.Option(min=0.0, max=1.0,
                                                       help="Membrane probability threshold (default: card).")] = None,
    post: Annotated[Optional[Post], typer.Option(help="Post-processing (default: card).")] = None,
    probabilities: Annotated[bool, typer.Option("--probabilities", help="Also write <name>_prob.tif (float membrane probability).")] = False,
    overlay: Annotated[bool, typer.Option("--overlay", help="Also write <name>_overlay.png (membranes drawn on the slice).")] = False,
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
    from . import batch
    from .errors import EmsegError

    files, problems = batch.expand_inputs(inputs)
    for problem in problems:
        _error(problem)
    if not files:
        raise typer.Exit(EXIT_NOTHING_DONE)
    if out is not None:
        try:
            batch.check_out_dir(out)
        except EmsegError as exc:
            raise _fail(exc) from None
    total = sum(batch.count_pixels(p) for p in files)  # from headers: sizes the workers and the progress bar
    workers, interpreter_threads = _workers(len(files), total, threads, delegate)
    segmenter = _load(model, interpreter_threads, delegate, tile, overlap)
    options = batch.Options(
        out_dir=out, post=segmenter.postprocessing(post.value if post else None, threshold),
        probabilities=probabilities, overlay=overlay, overwrite=overwrite, block=block, fixed_tile=tile is not None,
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
    from .blocks import SINGLE_BLOCK_PIXELS
    from .segmenter import default_threads

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
                if not quiet:
                    notes = f" ({'; '.join(event.notes)})" if event.notes else ""
                    typer.echo(f"{event.path} -> {', '.join(str(p) for p in event.outputs)}{notes}")
            else:
                failed += 1
                _error(event.error)
    timings["total"] = [time.perf_counter() - started]
    return done, failed, timings


def _summary(timings: dict[str, list[float]], files: int) -> str:
    slices = len(timings["infer"])
    parts = ", ".join(f"{k} {1000 * statistics.median(v):.0f} ms" for k, v in timings.items() if v and k != "total")
    total = timings["total"][0]
    return (f"{slices} slice(s) from {files} file(s) in {total:.2f} s ({1000 * total / max(slices, 1):.0f} ms per slice; "
            f"median stages, which overlap: {parts})")


@app.command()
def info(
    model: Annotated[Optional[str], typer.Argument(help="A .tflite file or embedded model name (default: int8).")] = None,
    threads: ThreadsOption = None,
    image: Annotated[Optional[Path], typer.Option(
        help="Also describe an input file: sections, size, pixel type and pixel size.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the card and runtime as JSON.")] = False,
) -> None:
    """Show a model's card, the interpreter backend in use and the thread count (and an input's)."""
    from . import registry
    from .amx import forgo_amx
    from .backend import backend

    if image is not None:
        _describe(image, as_json)

    from . import native

    segmenter = _load(model, threads)
    impl = backend()
    kernels = "compiled C" if native.available() else "numpy (no compiled kernels in this installation: ~10x slower)"
    runtime = {"backend": f"{impl.name} {impl.version}", "threads": segmenter.net.threads, "amx": forgo_amx(),
               "region_operations": kernels,
               "model_path": str(segmenter.net.path), "embedded_models": sorted(registry.embedded_models())}
    if as_json:
        typer.echo(json.dumps({"card": segmenter.card.to_dict(), "runtime": runtime}, indent=2))
        return
    card = segmenter.card
    lines = [
        f"model          {runtime['model_path']}",
        f"variant        {card.variant} ({card.architecture.name}: {card.architecture.params:,} parameters, "
        f"{card.architecture.macs_per_tile / 1e9:.2f} GMAC per {card.tiling.tile}px tile)",
        f"input          {card.input.dtype}{card.input.shape} scale={card.input.scale} zero_point={card.input.zero_point}",
        f"output         {card.output_meaning}, {card.output.dtype} scale={card.output.scale} zero_point={card.output.zero_point}",
        f"mask           membrane={card.mask.membrane_value} cell={card.mask.cell_value}",
        f"tiling         tile {card.tiling.tile}, halo {card.tiling.halo}, align {card.tiling.align}",
        f"postprocessing {card.postprocessing.method} (threshold {card.postprocessing.threshold})",
        f"trained on     {card.training.data} sections {_ranges(card.training.train_sections)}, "
        f"validated on {_ranges(card.training.val_sections)}",
    ]
    for name, evaluation in card.validation.items():
        w = evaluation.watershed
        lines.append(f"validation     {name}: V_rand {w.v_rand:.4f}, V_info {w.v_info:.4f} (watershed)")
    if card.agreement:
        a = card.agreement
        lines.append(f"agreement      {100 * a.pixel_agreement:.2f}% pixels, membrane Dice {a.membrane_dice:.4f} vs full model")
    lines += [f"backend        {runtime['backend']}", f"threads        {runtime['threads']}", f"AMX            {runtime['amx']}",
              f"watershed      {runtime['region_operations']}"]
    typer.echo("\n".join(lines))


def _describe(path: Path, as_json: bool) -> None:
    from .errors import EmsegError
    from .io import open_section

    try:
        with open_section(path) as section:
            facts = {"file": str(path), "sections": section.pages, "width": section.width, "height": section.height,
                     "dtype": section.dtype.name, "pixel_size_nm": section.pixel_size_nm, "notes": section.notes}
    except EmsegError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps({"image": facts}))
        return
    size = f"{facts['pixel_size_nm']:g} nm" if facts["pixel_size_nm"] else "not in the file"
    typer.echo(f"image          {path}: {facts['sections']} section(s) of {facts['width']} x {facts['height']} "
               f"{facts['dtype']}, pixel size {size}")


def _ranges(sections: list[int]) -> str:
    return f"{sections[0]}-{sections[-1]}" if sections == list(range(sections[0], sections[-1] + 1)) else str(sections)


@app.command()
def evaluate(
    images: Annotated[Path, typer.Option(help="Folder of raw sections, or a multi-page TIFF.")],
    labels: Annotated[Path, typer.Option(help="Matching folder of labels, or a label TIFF stack.")],
    model: ModelOption = None,
    threads: ThreadsOption = None,
    sections: Annotated[Optional[str], typer.Option(help="Sections to score, e.g. '25-29' (default: all).")] = None,
    label_kind: Annotated[LabelKind, typer.Option(
        help="auto, membrane (binary mask) or instances (neuron ids, 0 = boundary).")] = LabelKind.auto,
    membrane_value: Annotated[int, typer.Option(help="Mask value that marks membrane (ISBI: 0).")] = 0,
    metric: Annotated[Optional[Metric], typer.Option(
        help="V_rand / V_info definition: isbi (border thinning) or adapted (SNEMI3D / CREMI). "
             "Default: isbi for masks, adapted for instance ids.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    resample: ResampleOption = False,
    pixel_size_nm: PixelSizeOption = None,
) -> None:
    """Pixel error, membrane Dice, V_rand and V_info per slice and on average, against membrane masks or
    instance labels."""
    from .datasets import image_files, load_labeled, parse_sections
    from .errors import EmsegError
    from .evaluate import evaluate_volume
    from .io import open_section
    from .labels import LabelSpec
    from .pixelsize import ScaleCheck

    try:
        volume = load_labeled(images, labels, spec=LabelSpec(label_kind.value, membrane_value))
        if sections:
            chosen = parse_sections(sections)
            if max(chosen) >= len(volume.names):
                raise ValueError(f"section {max(chosen)} does not exist ({len(volume.names)} sections)")
            volume = volume.select(chosen)
    except (EmsegError, ValueError) as exc:
        raise _fail(exc) from None
    segmenter = _load(model, threads)
    try:
        with open_section(images if images.is_file() else image_files(images)[0]) as first:
            scale = ScaleCheck(segmenter.card.training.pixel_size_nm, resample, pixel_size_nm).check(first)
    except EmsegError as exc:
        raise _fail(exc) from None
    report = evaluate_volume(lambda image: segmenter.probabilities(image, scale=scale), volume,
                             segmenter.card.postprocessing, metric.value if metric else None)
    if as_json:
        typer.echo(json.dumps({"model": str(segmenter.net.path), "variant": segmenter.card.variant, **report.to_dict()}, indent=2))
        return
    typer.echo(f"{volume.kind} labels, {report.metric} V_rand / V_info")
    width = max(16, *(len(name) + 2 for name in report.names))
    typer.echo(f"{'slice':<{width}}{'post':<11}{'pixel err':>10}{'Dice':>8}{'V_rand':>9}{'V_info':>9}")
    for method, rows in report.per_slice.items():
        for name, s in [*zip(report.names, rows), ("mean", report.mean(method))]:
            typer.echo(f"{name:<{width}}{method:<11}{s.pixel_error:>10.4f}{s.membrane_dice:>8.4f}{s.v_rand:>9.4f}{s.v_info:>9.4f}")


@app.command()
def watch(
    inbox: Annotated[Path, typer.Argument(help="Folder the microscope writes sections to (local or a share).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the masks and the watch journal.")],
    model: ModelOption = None,
    threads: ThreadsOption = None,
    post: Annotated[Optional[Post], typer.Option(help="Post-processing (default: card).")] = None,
    interval: Annotated[float, typer.Option(min=0.05, help="Seconds between looks at the inbox.")] = 1.0,
    settle: Annotated[float, typer.Option(min=0.0, help="Seconds a file's size and time must stay the same.")] = 2.0,
    once: Annotated[bool, typer.Option("--once", help="Segment what is there and settled, then exit (cron).")] = False,
    log_json: Annotated[Optional[Path], typer.Option(help="Also append one JSON line per section to this file.")] = None,
    block: Annotated[Optional[int], typer.Option(min=16, help="Block size for big sections (default: as segment).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.")] = False,
    resample: ResampleOption = False,
    pixel_size_nm: PixelSizeOption = None,
) -> None:
    """Segment sections as they arrive: catch up on INBOX, then keep watching it (Ctrl-C stops after
    the current section). One line per section: name, time, regions."""
    import signal
    import threading

    from .batch import check_out_dir
    from .errors import EmsegError
    from .pixelsize import ScaleCheck
    from .watch import FileSkipped, Watcher, check_folders

    try:
        check_folders(inbox, out)
        check_out_dir(out)
    except EmsegError as exc:
        raise _fail(exc) from None
    segmenter = _load(model, threads)
    try:
        watcher = Watcher(segmenter, inbox, out, segmenter.postprocessing(post.value if post else None), settle, block,
                          ScaleCheck(segmenter.card.training.pixel_size_nm, resample, pixel_size_nm))
    except EmsegError as exc:
        raise _fail(exc) from None
    except OSError as exc:
        raise _fail(f"{out}: cannot use as output folder ({exc.strerror or exc})") from None
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    log = log_json.open("a", encoding="utf-8") if log_json else None
    if not quiet and not once:
        typer.echo(f"watching {inbox} every {interval:g} s (files settle after {settle:g} s); Ctrl-C stops", err=True)
    try:
        while not stop.is_set():
            for event in watcher.poll(once=once, stop=stop):
                if isinstance(event, FileSkipped):
                    _error(event.error)
                    continue
                if not quiet:
                    where = "" if event.section is None else f"[{event.section}]"
                    regions = f", {event.regions} regions" if event.regions is not None else ""
                    typer.echo(f"{event.path.name}{where} -> {event.output.name} ({1000 * event.seconds:.0f} ms{regions})")
                if log:
                    log.write(json.dumps(event.record()) + "\n")
                    log.flush()
            if once:
                break
            stop.wait(interval)
    finally:
        if log:
            log.close()


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
    threads: Annotated[int, typer.Option(min=1, help="Interpreter threads per worker.")] = 1,
    probabilities: Annotated[Optional[ProbabilityType], typer.Option(
        help="Also store the membrane probability, as uint8 (0-255) or float16.")] = None,
    resample: ResampleOption = False,
    pixel_size_nm: PixelSizeOption = None,
    resume: Annotated[bool, typer.Option("--resume", help="Finish an interrupted run: only blocks not done.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.")] = False,
) -> None:
    """Segment a volume section by section, block by block, on Dask; write OME-Zarr labels."""
    try:
        import distributed  # noqa: F401 -- the extra's packages, checked before any work
        import zarr  # noqa: F401

        from . import volume as engine
        from .volumes import open_volume
    except ImportError as exc:
        raise _fail(f"emseg-lite volume needs the volume extra ({exc.name} is missing): "
                    'pip install "emseg-lite[volume]"') from None
    from . import registry
    from .blockwise import plan_for
    from .card import ModelCard, card_path_for
    from .pixelsize import ScaleCheck
    from .errors import EmsegError

    if scheduler and workers:
        raise _fail("--workers starts a local cluster; with --scheduler the cluster is already there")
    try:
        model_path = registry.resolve(model).resolve()
        card = ModelCard.load(card_path_for(model_path))
        card.check_model_file(model_path)
        source = open_volume(input)
        scale = ScaleCheck(card.training.pixel_size_nm, resample, pixel_size_nm).check(source)
        plan = plan_for(card, source.height, source.width, card.postprocessing, block, scale=scale)
        job = engine.Job(str(input.resolve()), str(out.resolve()), str(model_path), threads, card.postprocessing,
                         plan, probabilities.value if probabilities else None)
        output = engine.open_or_create(job, source, card, resume, overwrite)
    except EmsegError as exc:
        raise _fail(exc) from None
    client = engine.local_cluster(workers, threads) if scheduler is None else _client(scheduler)
    done_events, failures = [], []
    try:
        events = engine.run(job, output, source, client)
        first = next(events)
        started = time.perf_counter()  # after the workers' warm-up: from the first block to the last
        if not quiet:
            typer.echo(f"{input}: {source.pages} section(s) of {source.width} x {source.height}, "
                       f"{first.total} block(s) of {plan.size} px ({first.done_before} already done), "
                       f"{first.workers} worker(s) ready in {first.warm_up_s:.1f} s", err=True)
        with typer.progressbar(length=max(first.total - first.done_before, 1), label="blocks", file=sys.stderr,
                               hidden=quiet, show_eta=True, show_pos=True) as bar:
            for event in events:
                if isinstance(event, engine.BlockFailed):
                    failures.append(event)
                    _error(f"{input}: section {event.z}, block row {event.row}, column {event.col}: {event.error}")
                else:
                    done_events.append(event)
                bar.update(1)
        seconds = time.perf_counter() - started
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


def _client(address: str):
    from distributed import Client

    try:
        return Client(address, timeout=30)
    except (OSError, TimeoutError) as exc:
        raise _fail(f"{address}: cannot reach the dask scheduler ({exc})") from None


def main() -> None:
    app()
