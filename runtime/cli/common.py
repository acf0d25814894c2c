"""What every ``emseg-lite`` command shares: the Typer app, common options, errors and model loading.

Heavy modules are imported inside functions, so that ``--help`` and the
start of every command stay instant (the slim ``segment`` starts in ~0.3 s).
"""
from __future__ import annotations

import logging
from enum import Enum
from typing import Annotated, Optional

import typer

from .. import __version__

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


class Accelerator(str, Enum):
    """``engine.model.ACCELERATORS``."""

    auto = "auto"
    cpu = "cpu"
    gpu = "gpu"


class LabelKind(str, Enum):
    """``labels.KINDS``, as choices the CLI can list without importing numpy."""

    auto = "auto"
    membrane = "membrane"
    instances = "instances"


class Metric(str, Enum):
    """``metrics.METRICS``."""

    isbi = "isbi"
    adapted = "adapted"


def error(message: object) -> None:
    typer.echo(f"error: {message}", err=True)


def fail(message: object) -> typer.Exit:
    """The one-line error of a command that can do nothing (exit 2), to ``raise``."""
    error(message)
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
                       "outputs stay on the inputs' grid. Off by default: see docs/pixel-size.md.")]
AcceleratorOption = Annotated[Accelerator, typer.Option(
    help="gpu: LiteRT's WebGPU accelerator (Vulkan on Linux: libvulkan1 and the GPU's driver); cpu: XNNPACK; "
         "auto: the GPU where one is found, else the CPU. One line says which ran and why.")]
PixelSizeOption = Annotated[Optional[float], typer.Option(
    "--pixel-size-nm", min=0.01, help="The inputs' pixel size in nm, where their files do not say it.")]


def load(model, threads, delegate=None, tile=None, overlap=None, accelerator: Accelerator | None = None):
    """The ``Segmenter`` for ``--model`` on ``--accelerator`` (the CPU where a command has none),
    XNNPACK kept off AMX (``engine.amx``); exit 2 if it cannot load."""
    from ..core.errors import EmsegError
    from ..engine.amx import forgo_amx
    from ..pipelines.segmenter import Segmenter

    forgo_amx()
    try:
        segmenter = Segmenter.load(model, threads=threads, delegate=delegate, tile=tile, overlap=overlap,
                                   accelerator=accelerator.value if accelerator else "cpu")
    except (EmsegError, ValueError) as exc:
        raise fail(exc) from None
    return segmenter


def tell_placement(segmenter) -> None:
    """The one line saying which accelerator runs and why: printed once work is under way, so
    that a refused input stays a one-line error."""
    typer.echo(f"accelerator: {segmenter.placement}", err=True)


def dask_client(address: str):
    """A client of the running dask scheduler at ``address`` (volume, neurons)."""
    from distributed import Client

    try:
        return Client(address, timeout=30)
    except (OSError, TimeoutError) as exc:
        raise fail(f"{address}: cannot reach the dask scheduler ({exc})") from None
