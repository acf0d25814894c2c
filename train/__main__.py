"""``python -m emseg_lite.train``: train the membrane U-Net on labelled EM sections.

`make train` calls this; it prints Keras's per-epoch progress and, at the end,
the validation figures of the float and QAT models.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)


@app.command()
def main(
    data: Annotated[Optional[Path], typer.Option(help="ISBI-style data folder (default: $EMSEG_DATA).")] = None,
    out: Annotated[Path, typer.Option(help="Run directory to write.")] = Path("runs/latest"),
    preset: Annotated[str, typer.Option(help="Architecture preset: edge, base16, seed.")] = "edge",
    config: Annotated[Optional[Path], typer.Option(help="A config.json to start from (overrides --preset).")] = None,
    loss: Annotated[Optional[str], typer.Option(help="bce, bce_dice or balanced_bce.")] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1)] = None,
    max_minutes: Annotated[Optional[float], typer.Option(help="Wall-clock budget of the float phase.")] = None,
    seed: Annotated[Optional[int], typer.Option()] = None,
    pixel_size_nm: Annotated[Optional[float], typer.Option(
        min=0.0, help="Pixel size of the data in nm (ISBI 2012: 4), recorded in the card.")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="A few tiny steps: checks the pipeline, not the model.")] = False,
) -> None:
    """Train, fine-tune with QAT, and write a run directory that export needs nothing else for."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from emseg_lite.runtime.core.errors import EmsegError

    from .config import PRESETS, TrainConfig
    from .config import quick as quick_config
    from .fit import train

    data = data or (Path(os.environ["EMSEG_DATA"]) if os.environ.get("EMSEG_DATA") else None)
    if data is None:
        typer.echo("error: no data; pass --data or set EMSEG_DATA (e.g. ../shared/data/isbi2012)", err=True)
        raise typer.Exit(2)
    if config is not None:
        cfg = TrainConfig.load(config)
    elif preset in PRESETS:
        cfg = TrainConfig(model=PRESETS[preset])
    else:
        typer.echo(f"error: unknown preset {preset!r}; choose from {', '.join(PRESETS)}", err=True)
        raise typer.Exit(2)
    overrides = {"loss": loss, "epochs": epochs, "max_minutes": max_minutes, "seed": seed,
                 "pixel_size_nm": pixel_size_nm}
    cfg = dataclasses.replace(cfg, data=str(data), **{k: v for k, v in overrides.items() if v is not None})
    if quick:
        cfg = quick_config(cfg)
    command = "python -m emseg_lite.train " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    try:
        card = train(cfg, out, command)
    except (EmsegError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"\nrun directory: {out}")
    typer.echo(f"{'model':<12}{'post':<11}{'pixel err':>10}{'Dice':>8}{'V_rand':>9}{'V_info':>9}")
    for name, evaluation in card.validation.items():
        for method, s in (("threshold", evaluation.threshold), ("watershed", evaluation.watershed)):
            typer.echo(f"{name:<12}{method:<11}{s.pixel_error:>10.4f}{s.membrane_dice:>8.4f}{s.v_rand:>9.4f}{s.v_info:>9.4f}")


if __name__ == "__main__":
    app()
