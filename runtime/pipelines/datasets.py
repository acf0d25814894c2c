"""Labelled EM volumes for training and evaluation (ISBI 2012 layout and TIFF stacks).

Two layouts are accepted, both given as an ``images`` and a ``labels`` path:

* two folders of single-section images matched by file name
  (``images/0.png`` <-> ``labels/0.png``), ordered by the number in the name;
* two multi-page TIFF stacks (``train-volume.tif`` + ``train-labels.tif``), any
  bit depth or byte order that ``reader.read_slices`` reads.

Labels are binary membrane masks or instance ids (``labels.LabelSpec``; by
default the kind is recognised). Everything is validated up front and each
problem is one ``InputError`` naming the file.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..formats.reader import image_files, read_slices
from ..formats.section import DEFAULT_MAX_PIXELS
from ..post import labels as label_kinds
from ..post.labels import LabelSpec


@dataclass
class LabeledVolume:
    """``images``: (n, h, w) in the files' dtype; ``membrane``: (n, h, w) bool, True = membrane;
    ``regions``: (n, h, w) int32 truth regions for scoring (0 = not scored); ``kind``: the
    labels' kind, ``membrane`` or ``instances``."""

    images: np.ndarray
    membrane: np.ndarray
    names: list[str]
    regions: np.ndarray
    kind: str = "membrane"

    @property
    def metric(self) -> str:
        """The V_rand / V_info definition of the labels' own tradition (see ``metrics``):
        ISBI's border thinning for membrane masks, CREMI/SNEMI3D's adapted Rand for instance ids."""
        return "adapted" if self.kind == "instances" else "isbi"

    def select(self, sections: list[int]) -> "LabeledVolume":
        return LabeledVolume(self.images[sections], self.membrane[sections], [self.names[i] for i in sections],
                             self.regions[sections], self.kind)


def load_labeled(images: str | Path, labels: str | Path, membrane_value: int = 0,
                 spec: LabelSpec | None = None) -> LabeledVolume:
    """Read an image/label pair; ``spec`` says how to read the labels (default: recognise the kind,
    membrane value ``membrane_value``)."""
    spec = spec or LabelSpec(membrane_value=membrane_value)
    images, labels = Path(images), Path(labels)
    for path in (images, labels):
        if not path.exists():
            raise InputError(path, "no such file or directory")
    if images.is_dir() != labels.is_dir():
        raise InputError(labels, f"images ({images}) and labels must both be folders or both be files")
    if images.is_dir():
        image_pages, label_pages, names = _load_folder_pair(images, labels)
    else:
        image_pages, label_pages, names = _load_stack_pair(images, labels)
    kind = label_kinds.resolve_kind(labels, label_pages, spec)
    membrane = np.stack([label_kinds.membrane_target(page, kind, spec) for _, page in label_pages])
    if kind == "instances" and spec.kind == "auto":
        label_kinds.check_plausible_instances(labels, membrane)
    for (source, _), section in zip(label_pages, membrane):
        label_kinds.check_section(source, section)
    regions = np.stack([label_kinds.truth_regions(page, kind, spec) for _, page in label_pages])
    return LabeledVolume(np.stack(image_pages), membrane, names, regions, kind)


def locate(root: str | Path) -> tuple[Path, Path]:
    """(images, labels) under a data path: the ISBI folder layout or a pair of stacks.

    ``root`` may be a data root holding ``isbi2012/``, the ISBI folder (with
    ``train/``), a folder with ``images/`` + ``labels/``, or one holding
    ``train-volume.tif`` + ``train-labels.tif``.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "data folder not found (set DATA= or EMSEG_DATA)")
    for candidate in (root / "isbi2012" / "train", root / "train", root):
        if (candidate / "images").is_dir() and (candidate / "labels").is_dir():
            return candidate / "images", candidate / "labels"
        if (candidate / "train-volume.tif").is_file() and (candidate / "train-labels.tif").is_file():
            return candidate / "train-volume.tif", candidate / "train-labels.tif"
    raise InputError(root, "no images/ + labels/ folders or train-volume.tif + train-labels.tif found here")


def parse_sections(text: str) -> list[int]:
    """'25-29' -> [25..29]; '0,2,4-6' -> [0, 2, 4, 5, 6]."""
    sections: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise ValueError(f"invalid section list {text!r}; use e.g. '25-29' or '0,3,5-7'")
        first, last = int(match[1]), int(match[2] or match[1])
        sections.extend(range(first, last + 1))
    return sections


def _load_folder_pair(images: Path, labels: Path):
    image_list, label_list = image_files(images), image_files(labels)
    if not image_list:
        raise InputError(images, "no images (.png, .jpg, .tif) in this folder")
    label_by_stem = {p.stem: p for p in label_list}
    image_stems = {p.stem for p in image_list}
    for path in image_list:
        if path.stem not in label_by_stem:
            raise InputError(path, f"has no label image in {labels}")
    for path in label_list:
        if path.stem not in image_stems:
            raise InputError(path, f"has no raw image in {images}")
    image_pages, label_pages = [], []
    for path in image_list:
        image = _single_page(path)
        label_path = label_by_stem[path.stem]
        label = _single_page(label_path)
        if label.shape != image.shape:
            raise InputError(label_path, f"label is {_wh(label.shape)} but its image {path.name} is {_wh(image.shape)}")
        if image_pages and image.shape != image_pages[0].shape:
            raise InputError(path, f"is {_wh(image.shape)} but {image_list[0].name} is {_wh(image_pages[0].shape)}")
        image_pages.append(image)
        label_pages.append((label_path, label))
    return image_pages, label_pages, [p.name for p in image_list]


def _load_stack_pair(images: Path, labels: Path):
    image_stack = read_slices(images, DEFAULT_MAX_PIXELS)
    label_stack = read_slices(labels, DEFAULT_MAX_PIXELS)
    if image_stack.notes or label_stack.notes:
        raise InputError(images if image_stack.notes else labels, "expected gray images, not colour")
    n_images, n_labels = len(image_stack.pages), len(label_stack.pages)
    if n_images != n_labels:
        raise InputError(labels, f"has {n_labels} sections but {images.name} has {n_images}")
    if image_stack.pages.shape != label_stack.pages.shape:
        raise InputError(
            labels, f"sections are {_wh(label_stack.pages.shape[1:])} but {images.name} has {_wh(image_stack.pages.shape[1:])}"
        )
    names = [f"{images.name}[{i}]" for i in range(n_images)]
    label_pages = [(f"{labels}[section {i}]", page) for i, page in enumerate(label_stack.pages)]
    return list(image_stack.pages), label_pages, names


def _single_page(path: Path) -> np.ndarray:
    slices = read_slices(path, DEFAULT_MAX_PIXELS)
    if len(slices.pages) != 1:
        raise InputError(path, f"holds {len(slices.pages)} sections; expected one image per file")
    if slices.notes:
        raise InputError(path, "expected a gray image, not colour")
    return slices.pages[0]


def _wh(shape) -> str:
    return f"{shape[-1]} x {shape[-2]}"
