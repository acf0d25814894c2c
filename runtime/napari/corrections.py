"""Proofread sections, saved the moment they are painted.

A correction is a whole section: its pixels (``images/0007.tif``, as the layer
holds them) and its corrected membrane mask (``labels/0007.tif``, in the card's
polarity, ISBI: 0 = membrane, 255 = cell). That is the folder-pair layout
``emseg_lite.train.finetune`` reads (``pipelines.datasets``), so the folder is
ready to fine-tune on at any time, and a crash of the viewer loses nothing: each
file is replaced atomically when its section is painted.

Edits of the region ids become membrane edits too (``membrane_after_region_edit``):
filling one region with its neighbour's id merges them (the membrane that parted
only those two goes), painting 0 splits, and painting a new id beside an old one
draws the boundary between them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from ..core.card import MaskPolarity
from ..core.errors import OutputError
from ..core.files import atomic_output

BAND = 8
"""Pixels either side of a membrane pixel within which it must see two different cells to
stay a boundary: wider than the membranes the model draws (2-8 px on ISBI)."""


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


def sections_touched(atoms, shape: tuple[int, ...]) -> set[int]:
    """The z indices a paint event's history atoms changed: a masked stroke's bounding
    box (``slice_key``), or the indices of a ``data_setitem``; {0} for a 2-D layer."""
    if len(shape) == 2:
        return {0}
    touched: set[int] = set()
    for atom in atoms:
        where = atom.slice_key[0] if hasattr(atom, "slice_key") else atom[0][0]
        if isinstance(where, slice):
            touched.update(range(*where.indices(shape[0])))
        else:
            touched.update(int(z) for z in np.unique(where))
    return touched


def membrane_after_region_edit(before: np.ndarray, after: np.ndarray,
                               membrane: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One section's membrane (bool) and region ids once its ids went from ``before`` to
    ``after`` (0 = membrane), changed only within ``BAND`` px of the edited pixels. There, a
    pixel the edit set to 0 is membrane; an old membrane pixel stays one only if it still sees
    two different ids (else the regions either side became one cell, whose id it takes); a
    cell pixel next to another id is the boundary between them."""
    changed = before != after
    if not changed.any():
        return membrane, after
    near = _window(changed.astype(np.uint8), np.maximum).astype(bool)
    highest = _window(after, np.maximum)
    lowest = _window(np.where(after == 0, np.iinfo(after.dtype).max, after), np.minimum)
    two_cells = (lowest != np.iinfo(after.dtype).max) & (lowest != highest)
    cells = after != 0
    interface = np.zeros(after.shape, dtype=bool)
    interface[1:] |= (after[1:] != after[:-1]) & cells[1:] & cells[:-1]
    interface[:, 1:] |= (after[:, 1:] != after[:, :-1]) & cells[:, 1:] & cells[:, :-1]
    result, ids = membrane.copy(), after.copy()
    result[near] = (~cells & changed | ~cells & ~changed & two_cells | cells & interface)[near]
    opened = near & ~cells & ~result  # a membrane that no longer parts two cells: the cell's now
    ids[opened] = highest[opened]
    return result, ids


def _window(values: np.ndarray, reduce) -> np.ndarray:
    """``reduce`` (np.maximum / np.minimum) over the (2 BAND + 1)² window of every pixel, edge-padded."""
    out = values
    for axis in (0, 1):
        padded = np.pad(out, [(BAND, BAND) if a == axis else (0, 0) for a in (0, 1)], mode="edge")
        windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * BAND + 1, axis=axis)
        out = reduce.reduce(windows, axis=-1)
    return out
