"""``python -m benchmarks.figure``: pictures of segmented slices for the README and docs/

Each picture is input | mask | overlay (512 x 512 px, full resolution), made with the embedded int8 model through
the runtime exactly as ``emseg-lite segment`` makes them: an ISBI test section
(never trained on) and a section from another larva (``vnc-stack2``).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from emseg_lite.runtime.engine.intensity import intensity_range, normalize
from emseg_lite.runtime.formats.reader import read_slices
from emseg_lite.runtime.pipelines.segmenter import Segmenter

PANEL = 512


def picture(segmenter: Segmenter, image: np.ndarray, title: str) -> Image.Image:
    membrane = segmenter.membrane(segmenter.probabilities(image))
    gray = normalize(image, *intensity_range(image, segmenter.card.normalization))
    gray8 = (gray * 255).astype(np.uint8)
    overlay = np.repeat(gray8[..., np.newaxis], 3, axis=-1)
    overlay[membrane] = (255, 0, 255)
    panels = [Image.fromarray(gray8).convert("RGB"), Image.fromarray(segmenter.to_mask(membrane)).convert("RGB"),
              Image.fromarray(overlay)]
    canvas = Image.new("RGB", (3 * PANEL + 20, PANEL + 24), "white")
    for i, (panel, label) in enumerate(zip(panels, ("input", "mask (0 = membrane)", "overlay"))):
        canvas.paste(panel, (i * (PANEL + 10), 24))
        ImageDraw.Draw(canvas).text((i * (PANEL + 10) + 4, 6), f"{label}" if i else f"{label}: {title}", fill="black")
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("EMSEG_DATA", "../shared/data")))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    segmenter = Segmenter.load()
    isbi = read_slices(args.data / "isbi2012" / "test" / "0.png").pages[0]
    picture(segmenter, isbi, "ISBI 2012 test section 0").save(args.out / "segmented_isbi.png")
    vnc = read_slices(args.data / "vnc-stack2" / "00.tif").pages[0][256:768, 256:768]
    picture(segmenter, vnc, "vnc-stack2/00.tif (other larva), centre 512 px").save(args.out / "segmented_vnc.png")
    print(f"wrote {args.out / 'segmented_isbi.png'} and {args.out / 'segmented_vnc.png'}")


if __name__ == "__main__":
    main()
