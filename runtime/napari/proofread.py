"""Proofreading one segmented image: its membrane and region layers, saved as they are edited.

On the membrane layer, label 1 splits a merged cell and 0 merges two fragments. On
an id layer -- the regions, or the 3-D neurons -- filling an object with its
neighbour's id merges the two, painting 0 splits one, and painting a new id beside
an old one draws the boundary between them (``corrections.membrane_after_region_edit``,
section by section); the membrane layer follows, so that the saved mask is what the
layers show.

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

    def __init__(self, image: str, corrections: Corrections, membrane, id_layers: list,
                 pixels: Callable[[str], np.ndarray], tell: Callable[..., None]):
        self.image, self.corrections, self.membrane = image, corrections, membrane
        self._pixels, self._tell = pixels, tell
        membrane.events.paint.connect(lambda event: self._later(self.save, event))
        for layer in id_layers:
            layer.events.paint.connect(self._watch(layer))

    def _watch(self, layer):
        """The paint callback of an id layer, with a copy of its ids as last saved (to see what
        an edit changed)."""
        before = np.array(_sections(layer.data))
        return lambda event: self._later(lambda touched: self._ids_edited(layer, before, touched), event)

    def _later(self, then, event) -> None:
        touched = sections_touched(event.value, event.source.data.shape)
        QTimer.singleShot(0, lambda: then(touched))

    def _ids_edited(self, layer, before: np.ndarray, sections) -> None:
        ids, masks = _sections(layer.data), _sections(self.membrane.data)
        for z in sorted(sections):
            membrane, ids[z] = membrane_after_region_edit(before[z], ids[z], masks[z] != 0)
            masks[z] = membrane
            before[z] = ids[z]
        self.membrane.refresh()
        layer.refresh()
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
