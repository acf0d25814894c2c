"""Does ``--resample`` help? The figures behind its default (docs/pixel-size.md).

ISBI's held-out sections 25-29 re-imaged at other pixel sizes (images box-averaged
when coarser, bilinear when finer; membrane labels resampled as a fraction and cut at
0.5), and fib-gala's train volume (FIB-SEM, pixel size not stated) at assumed pixel
sizes, each scored with the embedded int8 model and its card's watershed, as it is and
resampled to the model's pixel size -- what ``emseg-lite evaluate [--resample
--pixel-size-nm NM]`` prints. fib-gala's test volume is not looked at.

``python -m benchmarks.pixel_size_study DATA`` (``make pixel-size-study``), ~2 min on 2 cores.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from emseg_lite.runtime.pipelines.datasets import LabeledVolume, load_labeled, locate
from emseg_lite.runtime.pipelines.evaluate import evaluate_volume
from emseg_lite.runtime.pipelines.segmenter import Segmenter

ISBI_NM = (2.67, 3.0, 5.0, 6.0, 8.0)
FIB_GALA_NM = (6.0, 8.0, 10.0, 12.0)


def reimaged(volume: LabeledVolume, nm: float, model_nm: float, folder: Path) -> LabeledVolume:
    """``volume`` (at ``model_nm``) as a microscope at ``nm`` per pixel would have imaged it."""
    factor = model_nm / nm
    height, width = volume.images.shape[1:]
    size = (round(width * factor), round(height * factor))
    method = Image.BOX if factor < 1 else Image.BILINEAR
    images = np.stack([np.asarray(Image.fromarray(image).resize(size, method)) for image in volume.images])
    fraction = np.stack([np.asarray(Image.fromarray(m.astype(np.float32)).resize(size, method))
                         for m in volume.membrane])
    tifffile.imwrite(folder / f"{nm}-images.tif", images)
    tifffile.imwrite(folder / f"{nm}-labels.tif", np.where(fraction >= 0.5, 0, 255).astype(np.uint8))
    return load_labeled(folder / f"{nm}-images.tif", folder / f"{nm}-labels.tif")


def scores(segmenter: Segmenter, volume: LabeledVolume, scale: float | None) -> str:
    report = evaluate_volume(lambda image: segmenter.probabilities(image, scale=scale), volume,
                             segmenter.card.postprocessing)
    mean = report.mean("watershed")
    return f"{mean.v_rand:.3f} / {mean.v_info:.3f}"


def main(data: Path) -> None:
    segmenter = Segmenter.load("int8")
    model_nm = segmenter.card.training.pixel_size_nm
    print("| input | as it is | --resample |\n|---|---:|---:|")
    held_out = load_labeled(*locate(data / "isbi2012")).select([25, 26, 27, 28, 29])
    with tempfile.TemporaryDirectory() as folder:
        for nm in ISBI_NM:
            volume = reimaged(held_out, nm, model_nm, Path(folder))
            print(f"| ISBI 25-29 at {nm:g} nm | {scores(segmenter, volume, None)} | "
                  f"{scores(segmenter, volume, nm / model_nm)} |", flush=True)
    fib = data / "fib-gala"
    volume = load_labeled(fib / "train-volume.tif", fib / "train-labels.tif")
    print(f"| fib-gala train, 50 sections | {scores(segmenter, volume, None)} | |", flush=True)
    for nm in FIB_GALA_NM:
        print(f"| same, --pixel-size-nm {nm:g} | | {scores(segmenter, volume, nm / model_nm)} |", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("../shared/data"))
