"""What a label image means: a membrane mask or instance ids, turned into membrane targets and truth regions.

Labs label EM in two ways, and both are read:

* **membrane masks** (ISBI 2012): two values, one of them (``membrane_value``,
  ISBI: 0) marks membrane, the other cell interior;
* **instance labels** (CREMI, SNEMI3D, NeuroProof, gala): every neuron has its
  own id; 0, where present, is the boundary class. 8-, 16- or 32-bit integers.

``kind="auto"`` decides on the whole volume: exactly two values make a mask;
more make instance ids when the labels are 16- or 32-bit (as instance labels
ship), while 8-bit labels with stray values are refused as a damaged mask (a
JPEG or an interpolated resize) unless ``kind`` says ``instances``. A 16-bit
mask resampled with interpolation would still pass for ids, so in auto mode
ids whose boundaries cover more than ``MAX_BOUNDARY_FRACTION`` of the pixels
are refused as well.

Instance labels become membrane targets by their **boundaries**: label 0 plus,
where two different ids touch (4-neighbours), the upper or left pixel of the
pair -- a closed 1-pixel boundary, as the watershed draws it. ``boundary_width``
(odd, pixels) widens it by (width - 1) / 2 pixels on each side with 3 x 3
dilations: 1 keeps it as it is, 3 gives a 3-pixel band.

The **truth regions** scored by V_rand / V_info are, for masks, the 4-connected
non-membrane regions (as in ISBI 2012); for instance labels, the 4-connected
pieces of each id, 0 excluded. Per piece, because the scores are per section:
a neuron that leaves the section and comes back is two objects in 2-D, and no
2-D segmentation can join them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import InputError
from .regions import label

KINDS = ("auto", "membrane", "instances")
DEFAULT_BOUNDARY_WIDTH = 1
MAX_BOUNDARY_FRACTION = 0.5
"""Real instance labels have boundaries on a few to ~25 % of pixels; far more means noise, not neurons."""


@dataclass(frozen=True)
class LabelSpec:
    """How to read label images. ``membrane_value`` applies to masks, ``boundary_width`` to instance ids."""

    kind: str = "auto"
    membrane_value: int = 0
    boundary_width: int = DEFAULT_BOUNDARY_WIDTH

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown label kind {self.kind!r}; choose from {', '.join(KINDS)}")
        if self.boundary_width < 1 or self.boundary_width % 2 == 0:
            raise ValueError(f"boundary width must be an odd number of pixels >= 1, not {self.boundary_width}")


def resolve_kind(source, pages: list[tuple[object, np.ndarray]], spec: LabelSpec) -> str:
    """``membrane`` or ``instances`` for a volume of (source, label page) pairs; refuses what is neither.

    ``source`` names the whole volume, each page's own source the page at fault.
    """
    dtype = np.result_type(*(page for _, page in pages))
    if dtype.kind not in "ui":
        raise InputError(source, f"labels are {dtype} values; expected integer membrane masks or instance ids")
    per_page = [np.unique(page) for _, page in pages]  # sorted once, for the volume and each page's check
    values = np.unique(np.concatenate(per_page))
    if len(values) < 2:
        raise InputError(source, f"labels hold a single value ({values[0]}): nothing marks a membrane or boundary")
    kind = spec.kind
    if kind == "auto":
        # 8-bit labels with stray grey levels are far more often a damaged mask than instance ids.
        kind = "membrane" if len(values) == 2 or dtype.itemsize == 1 else "instances"
    if kind == "membrane":
        _check_binary(pages, per_page, spec)
        if spec.membrane_value not in values:
            raise InputError(source, f"no pixel has the membrane value {spec.membrane_value} (values: "
                                     f"{_shown(values)}); give the value that marks membrane")
    return kind


def _check_binary(pages: list[tuple[object, np.ndarray]], per_page: list[np.ndarray], spec: LabelSpec) -> None:
    seen: set[int] = set()
    for (page_source, _), values in zip(pages, per_page):
        seen.update(int(v) for v in values)
        if len(seen) > 2:
            hint = "; instance ids? then say so (kind instances)" if spec.kind == "auto" else ""
            raise InputError(page_source, f"labels must be binary ({spec.membrane_value} = membrane, one other value "
                                          f"= cell); found values {_shown(values)}{hint}")


def membrane_target(ids: np.ndarray, kind: str, spec: LabelSpec) -> np.ndarray:
    """(h, w) bool, True = membrane, from one section's labels."""
    if kind == "membrane":
        return ids == spec.membrane_value
    boundary = instance_boundaries(ids)
    for _ in range((spec.boundary_width - 1) // 2):
        boundary = _dilate(boundary)
    return boundary


def instance_boundaries(ids: np.ndarray) -> np.ndarray:
    """Label 0 plus the upper/left pixel of every 4-neighbour pair of different ids: closed, 1 pixel."""
    boundary = ids == 0
    inside = ~boundary
    boundary[:, :-1] |= (ids[:, :-1] != ids[:, 1:]) & inside[:, :-1] & inside[:, 1:]
    boundary[:-1, :] |= (ids[:-1, :] != ids[1:, :]) & inside[:-1, :] & inside[1:, :]
    return boundary


def truth_regions(ids: np.ndarray, kind: str, spec: LabelSpec) -> np.ndarray:
    """int32 regions 1..n of one section for scoring; 0 = boundary, not scored."""
    if kind == "membrane":
        return label(ids != spec.membrane_value)[0]
    return same_id_components(ids)


def same_id_components(ids: np.ndarray) -> np.ndarray:
    """Number the 4-connected pieces of each nonzero id 1..n (0 stays 0).

    One labelling of a grid twice as fine: pixels at even positions, and
    between two neighbours a link that is set only when both have the same id,
    so components never cross from one id to another.
    """
    height, width = ids.shape
    grid = np.zeros((2 * height - 1, 2 * width - 1), dtype=bool)
    grid[::2, ::2] = ids != 0
    grid[::2, 1::2] = (ids[:, :-1] == ids[:, 1:]) & (ids[:, 1:] != 0)
    grid[1::2, ::2] = (ids[:-1, :] == ids[1:, :]) & (ids[1:, :] != 0)
    return label(grid)[0][::2, ::2]


def check_section(source, membrane: np.ndarray) -> None:
    """A labelled section must show both membrane and cell, or it teaches and measures nothing."""
    if not membrane.any():
        raise InputError(source, "no membrane or boundary pixel in this section (wrong polarity or label kind?)")
    if membrane.all():
        raise InputError(source, "every pixel is membrane or boundary in this section (wrong polarity?)")


def check_plausible_instances(source, membranes: np.ndarray) -> None:
    fraction = float(membranes.mean())
    if fraction > MAX_BOUNDARY_FRACTION:
        raise InputError(source, f"labels look neither like a binary mask nor like instance ids ({100 * fraction:.0f} % "
                                 "of pixels would be boundary); say which they are (membrane or instances)")


def _dilate(mask: np.ndarray) -> np.ndarray:
    grown = mask.copy()
    grown[1:] |= mask[:-1]
    grown[:-1] |= mask[1:]
    rows = grown.copy()
    grown[:, 1:] |= rows[:, :-1]
    grown[:, :-1] |= rows[:, 1:]
    return grown


def _shown(values: np.ndarray) -> str:
    return ", ".join(str(v) for v in values[:6]) + (", ..." if len(values) > 6 else "")
