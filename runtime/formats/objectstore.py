"""Where a volume's objects live inside its OME-Zarr output (``emseg-lite neurons``).

Beside the section labels of ``omezarr``:

    labels/fragments/0  uint32 (uint64 for huge volumes): 3-D supervoxels, ids unique, on
                        the working pixel (``pool`` x ``pool`` in xy, scaled to match)
    labels/neurons/0    the same type, on every pixel: fragments joined at the threshold
    objects/faces       per object block, the fragment ids on its four side faces
    objects/face_probability   and the (pooled) membrane probability there (float16)
    objects/probability        on the working pixel (pool > 1): the pooled probability,
                               which tells the neurons which cells hold membrane
    objects/merges/R_C  per block, the merge history: fragment id pairs (n, 2) ...
    objects/scores/R_C  ... and the score of each merge (n,)
    objects/fragmented  one byte per object block, 1 once its fragments and merges are written
    objects/labelled    one byte per object block, 1 once its neurons are written

Object blocks span every section and ``block`` x ``block`` pixels, whole working
pixels: the merge history of a block is its own, and the client joins blocks at
their faces. Fragments stay on the grid they were made on: repeating them to every
pixel would write and read ``pool``² times the ids for nothing the neurons need.
"objects" in the root attributes holds the parameters; a run with other
parameters than the stored ones starts the objects again, one with only another
threshold rewrites the neurons only.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.errors import OutputError
from ..core.geometry import Region
from .omezarr import image_label, multiscales, probability_of, scale_of

FACES = ("top", "bottom", "left", "right")
LAYOUT = 2
"""Of the arrays above; objects stored in another layout are made again (2: fragments and
the pooled probability on the working pixel)."""


class ObjectStore:
    """The objects of one OME-Zarr output, for reading and writing blocks."""

    def __init__(self, path: Path, group):
        self.path = path
        self.group = group
        self.fragments = group["labels/fragments/0"]
        self.neurons = group["labels/neurons/0"]
        objects = group["objects"]
        self.faces = objects["faces"]
        self.face_probability = objects["face_probability"]
        self.fragmented = objects["fragmented"]
        self.labelled = objects["labelled"]
        self.parameters = dict(group.attrs["emseg-lite"]["objects"])
        self.block = int(self.parameters["block"])
        self.pool = int(self.parameters.get("pool", 1))

    @property
    def depth(self) -> int:
        return self.fragments.shape[0]

    @property
    def span(self) -> int:
        """How many ids each block may use: one per working voxel of a whole block."""
        return self.depth * cells_per_side(self.block, self.pool) ** 2

    def first_id(self, row: int, col: int) -> int:
        """A block's fragment ids are this + 1, + 2, ...: unique across the volume."""
        cols = self.fragmented.shape[1]
        return (row * cols + col) * self.span

    def write_block(self, row: int, col: int, core: Region, fragments: np.ndarray, probability: np.ndarray,
                    pairs: np.ndarray, scores: np.ndarray) -> None:
        """A block's fragments (z, y, x) on the working pixel, its faces and merge history; then
        mark it fragmented. ``probability``: pooled as the fragments, float or uint8 as
        ``probabilities`` stores it."""
        cells = core.pooled(self.pool)
        self.fragments[:, cells.slices[0], cells.slices[1]] = fragments.astype(self.fragments.dtype, copy=False)
        if self.pool > 1:
            self.group["objects/probability"][:, cells.slices[0], cells.slices[1]] = probability
        lines = np.zeros(self.faces.shape[2:], dtype=self.faces.dtype)
        chance = np.zeros(self.faces.shape[2:], dtype=np.float16)
        for index, (ids, p) in enumerate(_faces(fragments, probability)):
            lines[index, :, :ids.shape[1]] = ids
            chance[index, :, :ids.shape[1]] = p
        self.faces[row, col] = lines
        self.face_probability[row, col] = chance
        merges = self.group["objects/merges"]
        name = f"{row}_{col}"
        merges.create_array(name, shape=pairs.shape, dtype=np.uint64, overwrite=True)[...] = pairs
        self.group["objects/scores"].create_array(name, shape=scores.shape, dtype=np.float32,
                                                  overwrite=True)[...] = scores
        self.fragmented[row, col] = 1

    def history(self, row: int, col: int) -> tuple[np.ndarray, np.ndarray]:
        name = f"{row}_{col}"
        return np.asarray(self.group[f"objects/merges/{name}"]), np.asarray(self.group[f"objects/scores/{name}"])

    def pooled_probability(self, core: Region) -> np.ndarray | None:
        """A block's probability on the working pixel, as ``write_block`` stored it; None at
        pool 1, where the neurons are the fragments' own pixels and need none."""
        if self.pool == 1:
            return None
        cells = core.pooled(self.pool)
        return np.asarray(self.group["objects/probability"][:, cells.slices[0], cells.slices[1]])

    def write_neurons(self, row: int, col: int, core: Region, neurons: np.ndarray) -> None:
        self.neurons[:, core.slices[0], core.slices[1]] = neurons.astype(self.neurons.dtype, copy=False)
        self.labelled[row, col] = 1


def _faces(fragments: np.ndarray, probability: np.ndarray):
    """(ids, probability) on the top, bottom, left and right faces, each (z, length);
    ``probability`` as ``probabilities`` stores it, or float."""
    yield fragments[:, 0, :], probability_of(probability[:, 0, :])
    yield fragments[:, -1, :], probability_of(probability[:, -1, :])
    yield fragments[:, :, 0], probability_of(probability[:, :, 0])
    yield fragments[:, :, -1], probability_of(probability[:, :, -1])


def cells_per_side(block: int, pool: int) -> int:
    """Working pixels along a side of the largest object block."""
    return -(-block // pool)


def object_dtype(shape: tuple[int, int, int], block: int, pool: int = 1) -> np.dtype:
    """uint32 while every block's ids (``ObjectStore.first_id``) fit, else uint64."""
    depth, height, width = shape
    blocks = -(-height // block) * -(-width // block)
    return np.dtype(np.uint32 if (blocks + 1) * depth * cells_per_side(block, pool) ** 2 < 2**32 else np.uint64)


def open_objects(path: Path, group, parameters: dict, chunks: tuple[int, int]) -> ObjectStore:
    """The objects of ``group`` for ``parameters``, on blocks of ``chunks`` (height, width) px:
    created (again) unless they exist with the same parameters, but perhaps another
    threshold, whose neurons are then rewritten."""
    parameters = {**parameters, "layout": LAYOUT}
    stored = group.attrs["emseg-lite"].get("objects")
    same = stored is not None and {k: v for k, v in stored.items() if k != "threshold"} == \
        {k: v for k, v in parameters.items() if k != "threshold"} and "objects" in group
    try:
        if not same:
            _create(group, parameters, chunks)
        attrs = dict(group.attrs["emseg-lite"])
        if same and stored["threshold"] != parameters["threshold"]:
            group["objects/labelled"][...] = 0
        attrs["objects"] = parameters
        group.attrs["emseg-lite"] = attrs
    except OSError as exc:
        raise OutputError(path, f"cannot write ({exc.strerror or exc})") from None
    return ObjectStore(path, group)


def _create(group, parameters: dict, chunks: tuple[int, int]) -> None:
    from numcodecs import Zstd

    membrane = group["labels/membrane/0"]
    shape = membrane.shape
    block, pool = int(parameters["block"]), int(parameters.get("pool", 1))
    rows, cols = -(-shape[1] // chunks[0]), -(-shape[2] // chunks[1])
    dtype = object_dtype(shape, block, pool)
    compressors = [Zstd(level=1)]
    labels = group["labels"]
    scale = scale_of(group["labels/membrane"])
    for name, on in (("fragments", pool), ("neurons", 1)):
        image = labels.create_group(name, overwrite=True)
        image.create_array("0", shape=(shape[0], -(-shape[1] // on), -(-shape[2] // on)),
                           chunks=(1, -(-chunks[0] // on), -(-chunks[1] // on)), dtype=dtype, fill_value=0,
                           compressors=compressors)
        image.attrs.update(multiscales=multiscales(name, "0", scale, on), **{"image-label": image_label(None)})
    labels.attrs["labels"] = [*[n for n in labels.attrs["labels"] if n not in ("fragments", "neurons")],
                              "fragments", "neurons"]
    objects = group.create_group("objects", overwrite=True)
    face = (4, shape[0], cells_per_side(block, pool))
    objects.create_array("faces", shape=(rows, cols, *face), chunks=(1, 1, *face),
                         dtype=dtype, fill_value=0, compressors=compressors)
    objects.create_array("face_probability", shape=(rows, cols, *face),
                         chunks=(1, 1, *face), dtype=np.float16, fill_value=0, compressors=compressors)
    if pool > 1:
        probability = group["probabilities"]
        objects.create_array("probability", shape=group["labels/fragments/0"].shape,
                             chunks=group["labels/fragments/0"].chunks, dtype=probability.dtype, fill_value=0,
                             compressors=compressors)
    for flags in ("fragmented", "labelled"):
        objects.create_array(flags, shape=(rows, cols), chunks=(1, 1), dtype=np.uint8, fill_value=0)
    objects.create_group("merges")
    objects.create_group("scores")
