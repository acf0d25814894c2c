"""NeuroProof's FIB-SEM cube as TIFF stacks: a second lab volume for the fine-tuning recipe.

The recipe was developed on fib-gala's train volume alone; it should carry over,
with no code change, to another labelled volume of a similar modality it has
never seen. ``training_sample2`` of janelia-flyem/neuroproof_examples is one: 250
sections of 250 x 250 px of *Drosophila* medulla, FIB-SEM at 10 nm isotropic, with
dense body labels (no boundary class, so boundaries come from label changes). It is
not in ``../shared/data``; clone the repository yourself (nothing here downloads).

The volume is split as a lab would use it: the first 50 sections are the ones it
labels (``make carryover-study`` fine-tunes on five of them), and sections 150-249, a
micrometre and more away, are the "other block" the result is scored on.

``python -m benchmarks.neuroproof CHECKOUT OUT`` writes ``OUT/{labelled,test}-{images,labels}.tif``.
"""
from __future__ import annotations

import gzip
import sys
from pathlib import Path

import h5py
import numpy as np
import tifffile
from PIL import Image

from emseg_lite.runtime.core.errors import EmsegError, InputError
from emseg_lite.runtime.core.files import atomic_output

SAMPLE = "training_sample2"
PIXEL_NM = 10.0
LABELLED = slice(0, 50)
TEST = slice(150, 250)


def load(checkout: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8, body ids uint32), both (z, y, x): supervoxels mapped through ``transforms``.

    Raises InputError for a folder that is not a whole clone, before anything is written."""
    sample = checkout / SAMPLE
    pngs = sorted((sample / "grayscale_maps").glob("iso.*.png"))
    truth = sample / "groundtruth.h5.gz"
    if not pngs or not truth.is_file():
        raise InputError(checkout, f"not a clone of janelia-flyem/neuroproof_examples: needs {SAMPLE}/grayscale_maps/"
                                   f"iso.*.png and {SAMPLE}/groundtruth.h5.gz")
    if len(pngs) < TEST.stop:
        raise InputError(sample, f"has {len(pngs)} sections; the split needs {TEST.stop}")
    images = np.stack([np.asarray(Image.open(png)) for png in pngs])
    with gzip.open(truth) as raw, h5py.File(raw, "r") as h5:
        supervoxels = h5["stack"][()]
        transforms = h5["transforms"][()]
    bodies = np.zeros(max(int(supervoxels.max()), int(transforms[:, 0].max())) + 1, np.uint32)
    bodies[transforms[:, 0]] = transforms[:, 1]
    labels = bodies[supervoxels]
    if images.shape != labels.shape:
        raise InputError(sample, f"{images.shape} images against {labels.shape} labels")
    return images, labels


def main(checkout: Path, out: Path) -> None:
    images, labels = load(checkout)
    out.mkdir(parents=True, exist_ok=True)
    for name, part in (("labelled", LABELLED), ("test", TEST)):
        with atomic_output(out / f"{name}-images.tif") as tmp:
            tifffile.imwrite(tmp, images[part], imagej=True, resolution=(1 / PIXEL_NM,) * 2,
                             metadata={"unit": "nm", "spacing": PIXEL_NM})
        with atomic_output(out / f"{name}-labels.tif") as tmp:
            tifffile.imwrite(tmp, labels[part])
    print(f"{out}: sections {LABELLED.start}-{LABELLED.stop - 1} (labelled) and "
          f"{TEST.start}-{TEST.stop - 1} (test) of {len(images)}")


if __name__ == "__main__":
    try:
        main(Path(sys.argv[1]), Path(sys.argv[2]))
    except EmsegError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
