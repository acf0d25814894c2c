"""``python -m emseg_lite.export.bioimageio SOURCE``: package a full Keras model for bioimage.io.

Prints the ONNX agreement and the zip's path; exits 1 if the ONNX weights do not
reproduce the full model, 2 on bad input.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)


@app.command()
def main(
    source: Annotated[Path, typer.Argument(help="Run directory, export folder or .keras file with its card.")],
    out: Annotated[Path, typer.Option(help="Folder for the zip and the ONNX model with its card.")] = Path("models"),
    name: Annotated[str, typer.Option(help="The zip is NAME.bioimageio.zip.")] = "emseg",
    data: Annotated[Optional[str], typer.Option(help="Data folder, if not where the card says.")] = None,
    pixel_size_nm: Annotated[Optional[float], typer.Option(
        min=0.0, help="Pixel size of the training data in nm, where the card does not record it.")] = None,
    float_model_of: Annotated[Optional[Path], typer.Option(
        help="A variant's card (e.g. the shipped int8's): refuse any full model but the one it came from.")] = None,
) -> None:
    """Write NAME.bioimageio.zip: ONNX + SavedModel weights, test tensors, cover, README, rdf."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from emseg_lite.runtime.core.errors import EmsegError

    from ..build import GateFailure
    from .package import build_package

    try:
        card, target = build_package(source, out, name=name, data=data, pixel_size_nm=pixel_size_nm,
                                     float_model_of=float_model_of)
    except EmsegError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except GateFailure as exc:
        typer.echo(f"error: package refused: {exc}", err=True)
        raise typer.Exit(1) from None
    echo_package(card, target)


def echo_package(card, target: Path) -> None:
    a = card.agreement
    typer.echo(f"\nONNX vs full model on {len(card.training.val_sections or card.training.train_sections)} sections: "
               f"max |difference| {a.max_abs_diff:.2g}, masks agree on {100 * a.pixel_agreement:.4f}% of pixels")
    typer.echo(f"bioimage.io package: {target}")


if __name__ == "__main__":
    app()
