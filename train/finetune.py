"""``python -m emseg_lite.train.finetune``: adapt the shipped model to a lab's own labelled sections.

`make finetune IMAGES=... LABELS=... RUN=...` calls this. It starts from the
shipped float model (or ``--base``, any exported folder), fine-tunes on the
given sections, runs QAT, re-chooses the post-processing on held-out sections,
compares with the zero-shot model there and writes a run directory that
`make export` turns into TFLite models. Bad input is one line naming the file,
exit code 2, and nothing written.
"""
from __future__ import annotations

import dataclasses
import logging
import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)


@app.command()
def main(
    images: Annotated[Path, typer.Option(help="Raw sections: a multi-page TIFF or a folder of images.")],
    labels: Annotated[Path, typer.Option(help="Their labels: membrane masks or instance ids, same layout.")],
    out: Annotated[Path, typer.Option(help="Run directory to write.")] = Path("runs/finetune"),
    sections: Annotated[Optional[str], typer.Option(
        help="Sections to use, e.g. '0,10,20,30,40' (default: all). The last fifth is held out when there are >= 4.")] = None,
    label_kind: Annotated[str, typer.Option(help="auto, membrane (binary mask) or instances (neuron ids, 0 = boundary).")] = "auto",
    membrane_value: Annotated[int, typer.Option(help="Mask value that marks membrane (ISBI: 0).")] = 0,
    boundary_width: Annotated[Optional[int], typer.Option(help="Width in px of boundaries drawn from instance ids (odd).")] = None,
    base: Annotated[Optional[Path], typer.Option(help="Exported model folder to start from (default: the shipped models).")] = None,
    config: Annotated[Optional[Path], typer.Option(help="A fine-tuning config.json to start from.")] = None,
    steps: Annotated[Optional[int], typer.Option(min=1, help="Float fine-tuning steps.")] = None,
    seed: Annotated[Optional[int], typer.Option()] = None,
    quick: Annotated[bool, typer.Option("--quick", help="A few tiny steps: checks the pipeline, not the model.")] = False,
    pixel_size_nm: Annotated[Optional[float], typer.Option(
        min=0.0, help="Pixel size of the sections in nm (default: from the file's metadata, if it says).")] = None,
) -> None:
    """Fine-tune, QAT, calibrate and compare with the zero-shot model; write a run directory for export."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from emseg_lite.runtime.core.errors import EmsegError
    from emseg_lite.runtime.pipelines.datasets import parse_sections

    from .adapt import finetune
    from .config import FineTuneConfig, quick_finetune

    try:
        cfg = FineTuneConfig.load(config) if config else FineTuneConfig()
        overrides = {"boundary_width": boundary_width, "steps": steps, "seed": seed,
                     "pixel_size_nm": pixel_size_nm or _pixel_size_nm(images),
                     "base": None if base is None else str(base),
                     "sections": None if sections is None else parse_sections(sections)}
    except (OSError, ValueError) as exc:
        typer.echo(f"error: {config if config else '--sections'}: {exc}", err=True)
        raise typer.Exit(2) from None
    cfg = dataclasses.replace(cfg, images=str(images), labels=str(labels), label_kind=label_kind,
                              membrane_value=membrane_value, **{k: v for k, v in overrides.items() if v is not None})
    if quick:
        cfg = quick_finetune(cfg)
    command = "python -m emseg_lite.train.finetune " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    try:
        card = finetune(cfg, out, command)
    except EmsegError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"\nrun directory: {out}")
    if card.validation:
        metric = next(iter(card.validation.values())).metric
        typer.echo(f"held-out sections {card.training.val_sections} ({metric} V_rand / V_info):")
        typer.echo(f"{'model':<12}{'post':<11}{'pixel err':>10}{'Dice':>8}{'V_rand':>9}{'V_info':>9}")
        for name, evaluation in card.validation.items():
            for method, s in (("threshold", evaluation.threshold), ("watershed", evaluation.watershed)):
                typer.echo(f"{name:<12}{method:<11}{s.pixel_error:>10.4f}{s.membrane_dice:>8.4f}{s.v_rand:>9.4f}{s.v_info:>9.4f}")
    typer.echo(f"use: {card.comparison.use} -- {card.comparison.reason}")


def _pixel_size_nm(images: Path) -> float | None:
    """What the first image file says of its pixel size (ImageJ, OME-TIFF, MRC), if anything."""
    from emseg_lite.runtime.core.errors import EmsegError
    from emseg_lite.runtime.formats.reader import image_files, open_section

    try:
        first = image_files(images)[0] if images.is_dir() else images
        with open_section(first) as section:
            return section.pixel_size_nm
    except (EmsegError, IndexError, OSError):
        return None  # the reading proper reports what is wrong with the file


if __name__ == "__main__":
    app()
