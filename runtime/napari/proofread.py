"""Proofreading one segmented image: its membrane and region layers, saved as they are edited.

On the membrane layer, label 1 splits a merged cell and 0 merges two fragments. On
the region layer, filling a region with its neighbour's id merges the two, painting
0 splits one, and painting a new id beside an old one draws the boundary between
them (``corrections.membrane_after_region_edit``); the membrane layer follows, so
the two always agree and the saved mask is what both show.

napari announces an edit (``events.paint``) just before it writes it, so the work
runs at the next turn of the event loop. Undo and redo are not announced: fine-tuning
saves every corrected section again as the layers hold it then (``save``).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from qtpy.QtCore import QTimer

from ..core.errors import EmsegError
from .corrections import Corrections, membrane_after_region_edit, sections_touched


class Proofread:
    """The layers of one segmented image, and the folder their corrections go to.

    ``pixels(name)`` gives the image layer's sections as (z, y, x); ``tell(message,
    error=False)`` reports to the user."""

    def __init__(self, image: str, corrections: Corrections, membrane, regions,
                 pixels: Callable[[str], np.ndarray], tell: Callable[..., None]):
        self.image, self.corrections = image, corrections
        self.membrane, self.regions = membrane, regions
        self._pixels, self._tell = pixels, tell
        self._before = np.array(_sections(regions.data))  # the ids as last saved, to see what an edit changed
        membrane.events.paint.connect(lambda event: self._later(self.save, event))
        regions.events.paint.connect(lambda event: self._later(self._regions_edited, event))

    def _later(self, then, event) -> None:
        touched = sections_touched(event.value, event.source.data.shape)
        QTimer.singleShot(0, lambda: then(touched))

    def _regions_edited(self, sections) -> None:
        ids, masks = _sections(self.regions.data), _sections(self.membrane.data)
        for z in sorted(sections):
            membrane, ids[z] = membrane_after_region_edit(self._before[z], ids[z], masks[z] != 0)
            masks[z] = membrane
            self._before[z] = ids[z]
        self.membrane.refresh()
        self.regions.refresh()
        self.save(sections)

    def save(self, sections) -> None:
        """Save ``sections`` as the membrane layer holds them now."""
        try:
            pages = self._pixels(self.image)
            masks = _sections(self.membrane.data)
            for index in sorted(sections):
                self.corrections.save(index, pages[index], masks[index])
        except (EmsegError, ValueError, KeyError) as exc:
            return self._tell(str(exc), error=True)
        self._tell(f"corrections of {len(self.corrections.sections())} section(s) saved in {self.corrections.folder}")


def _sections(data: np.ndarray) -> np.ndarray:
    """A layer's data as (z, y, x), a view: a single section gets a z axis of one."""
    return data if data.ndim == 3 else data[np.newaxis]
