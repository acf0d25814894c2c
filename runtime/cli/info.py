"""``emseg-lite info``: a model's card, the interpreter in use, and optionally an input file's facts.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import Accelerator, AcceleratorOption, ThreadsOption, app, fail, load


@app.command()
def info(
    model: Annotated[Optional[str], typer.Argument(help="A .tflite file or embedded model name (default: int8).")] = None,
    threads: ThreadsOption = None,
    accelerator: AcceleratorOption = Accelerator.cpu,
    image: Annotated[Optional[Path], typer.Option(
        help="Also describe an input file: sections, size, pixel type and pixel size.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the card and runtime as JSON.")] = False,
) -> None:
    """Show a model's card, the interpreter backend in use and the thread count (and an input's).
    With --accelerator auto or gpu: where that would run the model, and why."""
    from ..engine import registry
    from ..engine.amx import forgo_amx
    from ..engine.backend import backend

    if image is not None:
        _describe(image, as_json)

    from ..post import native

    segmenter = load(model, threads, accelerator=accelerator)
    impl = backend()
    kernels = "compiled C" if native.available() else "numpy (no compiled kernels in this installation: ~10x slower)"
    runtime = {"backend": f"{impl.name} {impl.version}", "accelerator": segmenter.placement,
               "threads": segmenter.net.threads, "amx": forgo_amx(),
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
    lines += [f"backend        {runtime['backend']}", f"accelerator    {runtime['accelerator']}",
              f"threads        {runtime['threads']}", f"AMX            {runtime['amx']}",
              f"watershed      {runtime['region_operations']}"]
    typer.echo("\n".join(lines))


def _describe(path: Path, as_json: bool) -> None:
    from ..core.errors import EmsegError
    from ..formats.reader import open_section

    try:
        with open_section(path) as section:
            facts = {"file": str(path), "sections": section.pages, "width": section.width, "height": section.height,
                     "dtype": section.dtype.name, "pixel_size_nm": section.pixel_size_nm, "notes": section.notes}
    except EmsegError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(json.dumps({"image": facts}))
        return
    size = f"{facts['pixel_size_nm']:g} nm" if facts["pixel_size_nm"] else "not in the file"
    typer.echo(f"image          {path}: {facts['sections']} section(s) of {facts['width']} x {facts['height']} "
               f"{facts['dtype']}, pixel size {size}")


def _ranges(sections: list[int]) -> str:
    return f"{sections[0]}-{sections[-1]}" if sections == list(range(sections[0], sections[-1] + 1)) else str(sections)
