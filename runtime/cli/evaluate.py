"""``emseg-lite evaluate``: the model's figures against membrane masks or instance labels.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import (
    LabelKind,
    Metric,
    ModelOption,
    PixelSizeOption,
    ResampleOption,
    ThreadsOption,
    app,
    fail,
    load,
)


@app.command()
def evaluate(
    labels: Annotated[Path, typer.Option(help="Matching folder of labels, or a label TIFF stack.")],
    images: Annotated[Optional[Path], typer.Option(help="Folder of raw sections, or a multi-page TIFF.")] = None,
    objects: Annotated[Optional[Path], typer.Option(help=(
        "Instead of --images: an output of emseg-lite volume whose 3-D objects (labels/neurons, fragments, "
        "regions) are scored against instance --labels: VI split / merge (bits), adapted Rand F."))] = None,
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
    instance labels; with --objects, a volume's 3-D objects against instance labels."""
    from ..core.errors import EmsegError

    if (images is None) == (objects is None):
        raise fail("give --images (sections to segment and score) or --objects (a volume output), not both")
    if objects is not None:
        return _objects(objects, labels, as_json)
    from ..formats.pixelsize import ScaleCheck
    from ..formats.reader import image_files, open_section
    from ..pipelines.datasets import load_labeled, parse_sections
    from ..pipelines.evaluate import evaluate_volume
    from ..post.labels import LabelSpec

    try:
        volume = load_labeled(images, labels, spec=LabelSpec(label_kind.value, membrane_value))
        if sections:
            chosen = parse_sections(sections)
            if max(chosen) >= len(volume.names):
                raise ValueError(f"section {max(chosen)} does not exist ({len(volume.names)} sections)")
            volume = volume.select(chosen)
    except (EmsegError, ValueError) as exc:
        raise fail(exc) from None
    segmenter = load(model, threads)
    try:
        with open_section(images if images.is_file() else image_files(images)[0]) as first:
            scale = ScaleCheck(segmenter.card.training.pixel_size_nm, resample, pixel_size_nm).check(first)
    except EmsegError as exc:
        raise fail(exc) from None
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
    if report.challenge:
        c = report.challenge
        typer.echo(f"ISBI 2012 challenge figures (thinned, best of cell-probability thresholds 0.0-1.0): "
                   f"V_rand {c.v_rand:.4f} (at {c.v_rand_threshold:.1f}), V_info {c.v_info:.4f} (at {c.v_info_threshold:.1f})")


def _objects(output: Path, labels: Path, as_json: bool) -> None:
    from ..core.errors import EmsegError
    from ..formats.reader import read_slices
    from ..pipelines.evaluate import score_objects

    try:
        import zarr

        group = zarr.open_group(str(output), mode="r")
        group.attrs["emseg-lite"]
    except ImportError:
        raise fail('scoring a volume output needs the volume extra: pip install "emseg-lite[volume]"') from None
    except Exception:
        raise fail(f"{output}: not an output of emseg-lite volume") from None
    try:
        truth = read_slices(labels).pages
        if truth.dtype.kind not in "ui":
            raise fail(f"{labels}: labels are {truth.dtype} values; expected instance ids")
        scores = score_objects(group, truth, output)
    except EmsegError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(json.dumps({name: {**dataclasses.asdict(s), "vi": s.vi} for name, s in scores.items()}, indent=2))
        return
    typer.echo(f"{output} against {labels}: 3-D, on labelled voxels (ids > 0)")
    typer.echo(f"{'objects':<12}{'VI split':>10}{'VI merge':>10}{'VI':>8}{'ARAND F':>10}")
    for name, s in scores.items():
        typer.echo(f"{name:<12}{s.vi_split:>10.3f}{s.vi_merge:>10.3f}{s.vi:>8.3f}{s.arand_f:>10.3f}")
