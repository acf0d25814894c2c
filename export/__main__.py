"""``python -m emseg_lite.export RUN_DIR``: write every TFLite variant with its card, and the
bioimage.io package (ONNX + SavedModel) of the full model.

Prints a table (variant, size, agreement with the full model, V_rand) and exits
1 if the int8 model's pixel agreement is below ``--min-agreement`` or the ONNX
weights do not reproduce the full model.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)


@app.command()
def main(
    run_dir: Annotated[Path, typer.Argument(help="Run directory written by `make train`.")] = Path("runs/latest"),
    out: Annotated[Path, typer.Option(help="Folder for the models and their cards.")] = Path("models"),
    min_agreement: Annotated[float, typer.Option(min=0.0, max=1.0,
                                                 help="Fail if int8 pixel agreement is lower.")] = 0.99,
    data: Annotated[Optional[str], typer.Option(help="Data folder, if not where the card says.")] = None,
    pixel_size_nm: Annotated[Optional[float], typer.Option(
        min=0.0, help="Pixel size of the training data in nm, for the bioimage.io package.")] = None,
    variant: Annotated[Optional[list[str]], typer.Option(
        help="Only these TFLite variants, and no bioimage.io package (default: all, and the package).")] = None,
) -> None:
    """Convert a trained run to int8 (QAT and PTQ), float16 (also on 2048-px GPU tiles) and float32 TFLite models."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from emseg_lite.runtime.core.errors import EmsegError

    from .bioimageio.__main__ import echo_package
    from .bioimageio.package import build_package
    from .build import GateFailure, export_run
    from .convert import VARIANTS

    unknown = sorted(set(variant or ()) - set(VARIANTS))
    if unknown:
        typer.echo(f"error: unknown variant(s) {', '.join(unknown)}: choose from {', '.join(VARIANTS)}", err=True)
        raise typer.Exit(2)

    try:
        cards = export_run(run_dir, out, min_agreement, data, tuple(variant) if variant else VARIANTS)
        onnx_card, package = (None, None) if variant else build_package(
            out / "emseg-keras.keras", out, data=data, pixel_size_nm=pixel_size_nm)
    except EmsegError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except GateFailure as exc:
        typer.echo(f"error: export refused: {exc}", err=True)
        raise typer.Exit(1) from None
    method = cards[0].postprocessing.method
    typer.echo(f"\n{'variant':<10}{'file':<26}{'size':>10}{'agreement':>11}{'Dice':>8}{'V_rand':>9}{'dV_rand':>9}")
    for card in [*cards, *([onnx_card] if onnx_card else [])]:
        scores = card.validation.get("variant" if card.agreement else "full_model")
        v_rand = f"{getattr(scores, 'watershed' if method == 'watershed' else 'threshold').v_rand:>9.4f}" if scores else f"{'-':>9}"
        a = card.agreement
        agree = f"{100 * a.pixel_agreement:>10.2f}%{a.membrane_dice:>8.4f}" if a else f"{'(reference)':>11}{'':>8}"
        diff = f"{a.v_rand_diff:>+9.4f}" if a else ""
        typer.echo(f"{card.variant:<14}{card.model.file:<26}{card.model.size_bytes / 1024:>8.0f}KB{agree}{v_rand}{diff}")
    int8 = next((c for c in cards if c.variant == "int8"), None)
    if int8 is not None and int8.comparison is not None:
        typer.echo(f"\nint8 use: {int8.comparison.use} -- {int8.comparison.reason}")
    if package:
        echo_package(onnx_card, package)
    typer.echo(f"\nmodels and cards in {out}/")


if __name__ == "__main__":
    app()
