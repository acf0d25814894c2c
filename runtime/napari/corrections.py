"""Proofread sections, saved the moment they are painted.

A correction is a whole section: its pixels (``images/0007.tif``, as the layer
holds them) and its corrected membrane mask (``labels/0007.tif``, in the card's
polarity, ISBI: 0 = membrane, 255 = cell). That is the folder-pair layout
``emseg_lite.train.finetune`` reads (``pipelines.datasets``), so the folder is
ready to fine-tune on at any time, and a crash of the viewer loses nothing: each
file is replaced atomically when its section is painted.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from ..core.card import MaskPolarity
from ..core.errors import OutputError
from ..core.files import atomic_output


class Corrections:
    """The corrections folder of one image layer: ``images/`` and ``labels/``, one file a section."""

    def __init__(self, folder: Path, polarity: MaskPolarity):
        self.folder = Path(folder)
        self.images = self.folder / "images"
        self.labels = self.folder / "labels"
        self.polarity = polarity

    def save(self, index: int, pixels: np.ndarray, membrane: np.ndarray) -> None:
        """Section ``index``: its raw ``pixels`` and its ``membrane`` (nonzero = membrane)."""
        mask = np.where(membrane != 0, np.uint8(self.polarity.membrane_value), np.uint8(self.polarity.cell_value))
        name = f"{index:04d}.tif"
        try:
            for folder, data in ((self.images, pixels), (self.labels, mask)):
                folder.mkdir(parents=True, exist_ok=True)
                with atomic_output(folder / name) as tmp:
                    tifffile.imwrite(tmp, np.ascontiguousarray(data))
        except OSError as exc:
            raise OutputError(self.folder, f"cannot save corrections ({exc.strerror or exc})") from None

    def sections(self) -> list[int]:
        """The corrected sections, in order: those with both an image and a label file."""
        if not self.labels.is_dir():
            return []
        return sorted(int(p.stem) for p in self.labels.glob("*.tif") if (self.images / p.name).exists())
