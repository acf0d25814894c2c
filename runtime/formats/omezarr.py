"""The volume command's output: an OME-Zarr (NGFF 0.4) image with two label images.

Layout of ``OUTPUT.ome.zarr`` (zarr format 2, the widest-read OME-Zarr today:
napari-ome-zarr, neuroglancer, webknossos, BigDataViewer/MoBIE):

    .zattrs            multiscales of the root image, and "emseg-lite": model, card, parameters
    probabilities/     membrane probability (uint8 0-255 = 0-1, or float16), with --probabilities
    labels/membrane/0  uint8 label image: 1 = membrane, 0 = background (cell)
    labels/regions/0   uint32 (uint64 for huge volumes) label image: each section's regions (its cell
                       pixels' 4-connected components, 0 on membrane), ids unique across the volume
                       and seamless across blocks once stitched
    seams/             per block, the region ids on its core's four edges (``post.seams``)
    done/              one byte per block, 1 once all of the block's outputs are written
    stitched/          one byte per block, 1 once its region ids are the seamless ones

The root image is the probability map when it is written, else the membrane
labels themselves (the root's multiscales points at ``labels/membrane/0``), so
that opening the root in napari shows something without storing twice.

Every array is chunked one z section deep and at most ``MAX_CHUNK`` px a side, in
chunks that tile the block plan (``chunk_side``), so no two blocks ever write the
same chunk and workers need no locks. ``done`` has one
chunk per block; the plan, the model and every parameter that changes the
arrays are stored as a fingerprint, and ``--resume`` is refused when they differ.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..core.card import ModelCard
from ..core.errors import OutputError
from ..core.geometry import Block
from .volumes import Scale

VERSION = "0.4"
MAX_CHUNK = 1024
"""Chunks of at most this many pixels a side: a viewer streams 1-4 MB a chunk, and a
reader of a small window (``neurons``' 512-px blocks) does not decompress a whole
4096-px section for it -- that read took 1.7 s of a 100-section block's 10 s."""


def probability_of(stored: np.ndarray) -> np.ndarray:
    """float32 membrane probability of what ``probabilities`` holds (uint8: value / 255)."""
    if stored.dtype == np.uint8:
        return stored.astype(np.float32) / np.float32(255.0)
    return stored.astype(np.float32, copy=False)  # float32 already: no second copy of a block


@dataclass(frozen=True)
class Layout:
    """Everything that decides the output arrays; its fingerprint guards ``--resume``."""

    input: str
    shape: tuple[int, int, int]
    block: int
    context: int
    model_sha256: str
    postprocessing: dict
    probabilities: str | None
    model_grid: tuple[int, int] | None = None
    """Each section's grid at the model's pixel size, where the network ran (``--resample``)."""

    def fingerprint(self) -> str:
        fields = asdict(self)
        if self.model_grid is None:
            del fields["model_grid"]  # so that runs started before resampling existed still resume
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()

    @property
    def region_stride(self) -> int:
        """Region ids are block number x stride + the region's number in its block; a block
        has at most this many: regions are 4-connected, so at most one per two pixels of
        each post-processing piece's window, and the pieces' windows overlap by far less
        than the block's window again (``blocks.pieces``)."""
        window = min(self.block + 2 * self.context, max(self.shape[1:]))
        return window * window

    @property
    def region_dtype(self) -> np.dtype:
        """uint32 while every id fits, uint64 beyond (half the bytes to write for most volumes)."""
        depth, height, width = self.shape
        blocks = depth * -(-height // self.block) * -(-width // self.block)
        return np.dtype(np.uint32 if (blocks + 1) * self.region_stride < 2**32 else np.uint64)


class Output:
    """The arrays of an OME-Zarr output, opened for writing blocks."""

    def __init__(self, path: Path, group):
        self.path = path
        self.group = group
        if "seams" not in group:
            raise OutputError(path, "cannot resume: written by an older emseg-lite without seamless region ids "
                                    "(use --overwrite to start again)")
        self.membrane = _for_writing(group["labels/membrane/0"])
        self.regions = _for_writing(group["labels/regions/0"])
        self.probabilities = _for_writing(group["probabilities"]) if "probabilities" in group else None
        self.seams = group["seams"]
        self.done = group["done"]
        self.stitched = group["stitched"]
        self.stride = int(group.attrs["emseg-lite"]["region_stride"])

    def first_id(self, z: int, block: Block) -> int:
        """The block's region ids are this + 1, + 2, ...: unique across the volume."""
        rows, cols = self.done.shape[1:]
        return ((z * rows + block.row) * cols + block.col) * self.stride

    def write(self, z: int, block: Block, membrane: np.ndarray, ids: np.ndarray, seams: np.ndarray,
              probability: np.ndarray | None) -> None:
        """Write one block's core into every array (``ids`` from ``first_id``; ``seams`` the
        (4, block) id lines on its edges), then mark it done."""
        where = (z, block.core.slices[0], block.core.slices[1])
        self.membrane[where] = membrane.astype(np.uint8)
        self.regions[where] = ids.astype(self.regions.dtype)
        self.seams[z, block.row, block.col] = seams
        if self.probabilities is not None:
            if self.probabilities.dtype == np.uint8:
                probability = np.clip(np.round(probability * 255.0), 0, 255).astype(np.uint8)
            self.probabilities[where] = probability.astype(self.probabilities.dtype)
        self.done[z, block.row, block.col] = 1

    def restitch(self, z: int, block: Block, ids: np.ndarray) -> None:
        """Replace a block's region ids by their seamless ones, then mark it stitched."""
        self.regions[z, block.core.slices[0], block.core.slices[1]] = ids.astype(self.regions.dtype)
        self.stitched[z, block.row, block.col] = 1

    def done_blocks(self) -> np.ndarray:
        """(z, rows, cols) bool: which blocks are complete."""
        return np.asarray(self.done[...]) == 1

    def stitched_blocks(self) -> np.ndarray:
        """(z, rows, cols) bool: which blocks have their seamless ids."""
        return np.asarray(self.stitched[...]) == 1


def _for_writing(array):
    """``array`` writing every chunk as it comes. zarr by default first tests whether a
    chunk is all fill value, to store nothing for it; for a 4096-px uint32 block that test
    took 100-300 ms against 35 ms to compress and write it, and a block of labels is
    almost never all zero."""
    return array.with_config({"write_empty_chunks": True})


def create(path: Path, layout: Layout, scale: Scale, card: ModelCard, overwrite: bool) -> Output:
    """A new output for ``layout`` (refused if ``path`` exists, unless ``overwrite``)."""
    import zarr

    if path.exists() and not overwrite:
        raise OutputError(path, "already exists; use --resume to finish it or --overwrite to start again")
    depth, height, width = layout.shape
    chunks = (1, min(chunk_side(layout.block), height), min(chunk_side(layout.block), width))
    rows, cols = -(-height // layout.block), -(-width // layout.block)
    from numcodecs import Zstd

    compressors = [Zstd(level=1)]  # label images: 7x faster than zarr's default Blosc-LZ4 and 3x smaller
    try:
        group = zarr.open_group(str(path), mode="w", zarr_format=2)
        labels = group.create_group("labels")
        for name, dtype, colour in (("membrane", np.uint8, [255, 0, 255, 255]), ("regions", layout.region_dtype, None)):
            image = labels.create_group(name)
            image.create_array("0", shape=layout.shape, chunks=chunks, dtype=dtype, fill_value=0,
                               compressors=compressors)
            image.attrs.update(multiscales=multiscales(name, "0", scale),
                               **{"image-label": image_label(colour)})
        labels.attrs["labels"] = ["membrane", "regions"]
        if layout.probabilities:
            group.create_array("probabilities", shape=layout.shape, chunks=chunks, dtype=layout.probabilities,
                               fill_value=0, compressors=compressors)
        group.create_array("seams", shape=(depth, rows, cols, 4, layout.block), chunks=(1, 1, 1, 4, layout.block),
                           dtype=layout.region_dtype, fill_value=0, compressors=compressors)
        for flags in ("done", "stitched"):
            group.create_array(flags, shape=(depth, rows, cols), chunks=(1, 1, 1), dtype=np.uint8, fill_value=0)
        root = "probabilities" if layout.probabilities else "labels/membrane/0"
        group.attrs.update(multiscales=multiscales("emseg-lite", root, scale), **{"emseg-lite": {
            "fingerprint": layout.fingerprint(), "layout": asdict(layout),
            "model": {"variant": card.variant, "file": card.model.file, "sha256": card.model.sha256,
                      "architecture": card.architecture.name, "trained": card.training.date,
                      "emseg_lite": card.versions.get("emseg_lite")},
            "probabilities": "uint8: value / 255" if layout.probabilities == "uint8" else layout.probabilities,
            "membrane": "1 = membrane (boundary between neurites), 0 = inside a cell",
            "regions": "4-connected regions of each section's cell pixels (0 on membrane), seamless across blocks; "
                       "id = block number x region_stride + number in the block of its first block",
            "region_stride": layout.region_stride,
            "voxel_size": {"z": scale.z, "y": scale.y, "x": scale.x, "unit": scale.unit},
        }})
    except OSError as exc:
        raise OutputError(path, f"cannot write ({exc.strerror or exc})") from None
    return Output(path, group)


def open_for_resume(path: Path, layout: Layout) -> Output:
    """The existing output at ``path``, if it was started with this very layout."""
    import zarr

    try:
        group = zarr.open_group(str(path), mode="r+")
        stored = group.attrs["emseg-lite"]
    except Exception:
        raise OutputError(path, "cannot resume: not an output of emseg-lite volume") from None
    if stored["fingerprint"] != layout.fingerprint():
        before = stored["layout"]
        changed = [key for key, value in asdict(layout).items() if _plain(before.get(key)) != _plain(value)]
        raise OutputError(path, f"cannot resume: it was started with another {', '.join(changed) or 'layout'} "
                                "(use --overwrite to start again)")
    return Output(path, group)


def _plain(value):
    return json.loads(json.dumps(value))


def chunk_side(block: int) -> int:
    """The largest side of at most ``MAX_CHUNK`` px that divides ``block`` (a multiple of the
    network's down-sampling, 16, where one exists), so that chunks tile the blocks."""
    if block <= MAX_CHUNK:
        return block
    sides = [d for d in range(MAX_CHUNK, 0, -1) if block % d == 0]
    return next((d for d in sides if d % 16 == 0), sides[0])


def scale_of(image) -> Scale:
    """The scale an image group's multiscales state (as ``multiscales`` writes it)."""
    meta = image.attrs["multiscales"][0]
    z, y, x = meta["datasets"][0]["coordinateTransformations"][0]["scale"]
    return Scale(z, y, x, meta["axes"][0].get("unit"))


def multiscales(name: str, path: str, scale: Scale, pool: int = 1) -> list[dict]:
    """One dataset's metadata; ``pool`` > 1: an image on cells of ``pool`` x ``pool`` pixels
    in xy, scaled and shifted so that each cell's centre lies on the pixels it covers."""
    axes = [{"name": a, "type": "space", **({"unit": scale.unit} if scale.unit else {})} for a in "zyx"]
    sizes = [scale.z or 1.0, scale.y or 1.0, scale.x or 1.0]
    transforms = [{"type": "scale", "scale": [sizes[0], sizes[1] * pool, sizes[2] * pool]}]
    if pool > 1:
        transforms.append({"type": "translation",
                           "translation": [0.0, sizes[1] * (pool - 1) / 2, sizes[2] * (pool - 1) / 2]})
    return [{"version": VERSION, "name": name, "axes": axes,
             "datasets": [{"path": path, "coordinateTransformations": transforms}]}]


def placement(image) -> dict[str, tuple[float, ...]]:
    """An image group's scale and translation (z, y, x), as napari's layers take them."""
    transforms = image.attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"]
    placed = {"scale": (1.0, 1.0, 1.0), "translate": (0.0, 0.0, 0.0)}
    for transform in transforms:
        key = "scale" if transform["type"] == "scale" else "translate"
        placed[key] = tuple(transform[transform["type"]])
    return placed


def image_label(colour: list[int] | None) -> dict:
    label = {"version": VERSION, "source": {"image": "../../"}}
    if colour:
        label["colors"] = [{"label-value": 1, "rgba": colour}]
    return label
