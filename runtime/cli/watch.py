"""``emseg-lite watch``: follow a microscope's output folder, one line per section.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import (
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
def watch(
    inbox: Annotated[Path, typer.Argument(help="Folder the microscope writes sections to (local or a share).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the masks and the watch journal.")],
    model: ModelOption = None,
    accelerator: AcceleratorOption = Accelerator.auto,
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

    from ..core.errors import EmsegError
    from ..formats.pixelsize import ScaleCheck
    from ..pipelines.outputs import check_out_dir
    from ..pipelines.watch import FileSkipped, Watcher, check_folders

    try:
        check_folders(inbox, out)
        check_out_dir(out)
    except EmsegError as exc:
        raise fail(exc) from None
    segmenter = load(model, threads, accelerator=accelerator)
    try:
        watcher = Watcher(segmenter, inbox, out, segmenter.postprocessing(post.value if post else None), settle, block,
                          ScaleCheck(segmenter.card.training.pixel_size_nm, resample, pixel_size_nm))
    except EmsegError as exc:
        raise fail(exc) from None
    except OSError as exc:
        raise fail(f"{out}: cannot use as output folder ({exc.strerror or exc})") from None
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    log = log_json.open("a", encoding="utf-8") if log_json else None
    if not quiet and not once:
        typer.echo(f"watching {inbox} every {interval:g} s (files settle after {settle:g} s); Ctrl-C stops", err=True)
    told = quiet
    try:
        while not stop.is_set():
            for event in watcher.poll(once=once, stop=stop):
                if isinstance(event, FileSkipped):
                    error(event.error)
                    continue
                if not told:
                    tell_placement(segmenter)
                    told = True
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
