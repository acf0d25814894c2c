"""The Python API: ``Segmenter.load(model=None)`` then ``.probabilities`` / ``.segment``.

A Segmenter is the engine's ``Model`` (a TFLite network plus its model card)
with the steps that make a mask: the card's post-processing and mask polarity,
and ``segment``, which runs the block-wise core exactly as ``emseg-lite
segment`` does. The CLI and the benchmarks are thin layers over this class.

Arrays in: a 2-D slice of any size and numeric type. Arrays out:
``probabilities`` -> float32 membrane probability in [0, 1];
``segment`` -> uint8 mask in the card's polarity (ISBI: 0 = membrane, 255 = cell).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterator

import numpy as np

from ..core.card import PostProcessing
from ..engine.model import Model
from ..formats.section import ArraySection
from ..post.postprocess import membrane_mask
from .blockwise import Finished, finish_block, infer_block, plan_for, prepare_page


class Segmenter(Model):
    """The engine's ``Model`` with the card's post-processing and polarity: masks, not just probability."""

    def postprocessing(self, method: str | None = None, threshold: float | None = None) -> PostProcessing:
        """The card's post-processing with optional overrides of method and threshold."""
        post = self.card.postprocessing
        if method is not None:
            post = dataclasses.replace(post, method=method)
        if threshold is not None:
            post = dataclasses.replace(post, threshold=threshold)
        return post

    def membrane(self, probability: np.ndarray, post: PostProcessing | None = None) -> np.ndarray:
        """Bool membrane map (True = membrane) from a probability map."""
        return membrane_mask(probability, post or self.card.postprocessing)

    def to_mask(self, membrane: np.ndarray) -> np.ndarray:
        """Bool membrane map -> uint8 mask in the card's polarity."""
        polarity = self.card.mask
        return np.where(membrane, np.uint8(polarity.membrane_value), np.uint8(polarity.cell_value))

    def segment(self, image: np.ndarray, post: PostProcessing | None = None, block: int | None = None,
                scale: float | None = None) -> np.ndarray:
        """uint8 membrane mask of a 2-D slice in the card's polarity (ISBI: 0 = membrane).

        Block by block (``blockwise``), exactly as ``emseg-lite segment``: sections up
        to 4096 x 4096 px in one piece, bigger ones in ``block``-pixel blocks.
        ``scale``: as for ``probabilities``.
        """
        if image.ndim != 2 or image.size == 0:
            raise ValueError(f"expected a non-empty 2-D slice, got shape {image.shape}")
        membrane = np.empty(image.shape, dtype=bool)
        for done in segment_blocks(self, image[np.newaxis], post or self.card.postprocessing, block, scale):
            membrane[done.block.core.slices] = done.membrane
        return self.to_mask(membrane)


def block_count(segmenter: Model, pages: np.ndarray, post: PostProcessing, block: int | None = None,
                scale: float | None = None) -> int:
    """How many blocks ``segment_blocks`` yields for ``pages`` (z, y, x): for progress bars."""
    return pages.shape[0] * plan_for(segmenter.card, *pages.shape[1:], post, block, segmenter.grid.halo,
                                     scale).count(*pages.shape[1:])


def segment_blocks(segmenter: Model, pages: np.ndarray, post: PostProcessing, block: int | None = None,
                   scale: float | None = None, keep_probability: bool = False,
                   keep_regions: bool = False) -> Iterator[Finished]:
    """Every block of a (z, y, x) stack held in memory, section by section, as the block-wise
    core finishes it (membrane True = membrane; probability and regions when asked): the
    plan, tiles and post-processing of ``emseg-lite segment``, for callers that hold arrays
    (``segment``, the napari plugin) and want progress, a way to stop between blocks, or
    more than the mask."""
    section = ArraySection(Path("<array>"), pages)
    plan = plan_for(segmenter.card, section.height, section.width, post, block, segmenter.grid.halo, scale)
    for index in range(section.pages):
        page = prepare_page(segmenter, section, index, plan)
        for part in page.blocks:
            yield finish_block(infer_block(segmenter, page, part), post, keep_probability, keep_regions)
