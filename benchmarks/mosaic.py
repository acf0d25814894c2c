"""Big test sections made of real ones: vnc-stack2's four 1024 x 1024 sections in
their eight orientations, laid out like a microscope's mosaic (never noise).

``python -m benchmarks.mosaic SIDE OUT.tif`` writes one as an uncompressed,
contiguous TIFF -- what most acquisition software writes -- band by band, so a
30000 x 30000 section (900 MB) is built without holding it.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

TILE = 1024


def variants(data_root: Path) -> list[np.ndarray]:
    import tifffile

    sections = [tifffile.imread(data_root / "vnc-stack2" / f"0{i}.tif") for i in range(4)]
    return [np.rot90(s[:, ::-1] if flip else s, k) for s in sections for flip in (0, 1) for k in range(4)]


def band(parts: list[np.ndarray], row: int, width: int) -> np.ndarray:
    """Row ``row`` of tiles, ``width`` pixels wide."""
    tiles = [parts[(7 * row + 3 * col) % len(parts)] for col in range(-(-width // TILE))]
    return np.concatenate(tiles, axis=1)[:, :width]


def write_mosaic(data_root: Path, side: int, path: Path) -> Path:
    import tifffile

    parts = variants(data_root)
    image = tifffile.memmap(path, shape=(side, side), dtype=np.uint8)
    for row in range(-(-side // TILE)):
        rows = image[row * TILE : (row + 1) * TILE]
        rows[:] = band(parts, row, side)[: rows.shape[0]]
    image.flush()
    del image
    return path


if __name__ == "__main__":
    import os

    write_mosaic(Path(os.environ.get("EMSEG_DATA", "../shared/data")), int(sys.argv[1]), Path(sys.argv[2]))
