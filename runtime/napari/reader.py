"""emseg-lite's outputs as napari layers, at their pixel size.

Two kinds of output are recognised, and nothing else (a plain PNG stays napari's):

* what ``segment`` writes for one input -- ``<stem>_mask.png|tif`` and
  ``<stem>_prob.tif`` -- opened together with the input ``<stem>.*`` where it lies
  beside them: the image, the membrane probability, and the membranes as a label
  layer (1 = membrane);
* a ``volume`` output (``*.ome.zarr`` whose attributes say emseg-lite wrote it):
  its input volume (read lazily, section by section), the probabilities when
  stored, ``labels/membrane`` and ``labels/regions``, and ``labels/neurons`` (with its
  ``labels/fragments``, hidden) where ``emseg-lite neurons`` wrote them, all lazy dask arrays.

Scales come from the files' metadata: nm per pixel for a section's outputs (the
input's, else the output's own), the OME-Zarr's own scale and unit for a volume;
a file that says nothing is shown at 1 pixel per unit. Choosing a section's mask
and its probability map together opens that section once.
"""
from __future__ import annotations

import glob
import json
from pathlib import Path

import numpy as np

from ..core.card import ModelCard, card_path_for
from ..engine import registry
from ..formats.reader import open_section
from ..formats.section import IMAGE_SUFFIXES
from ..pipelines.outputs import OUTPUT_TAGS

LayerData = tuple  # (data, metadata, layer type), as npe2 readers return them
_MASK, _PROB = "_mask", "_prob"


def get_reader(path: str | list[str]):
    """The reader for ``path`` when it is an emseg-lite output, else None (npe2 reader hook)."""
    paths = [Path(p) for p in ([path] if isinstance(path, str) else path)]
    return read if paths and all(_is_volume_output(p) or _stem_of_output(p) for p in paths) else None


def read(path: str | list[str]) -> list[LayerData]:
    layers: list[LayerData] = []
    opened: set[tuple[Path, str]] = set()
    for one in [Path(p) for p in ([path] if isinstance(path, str) else path)]:
        if _is_volume_output(one):
            layers += _read_volume(one)
        elif (section := (one.parent, _stem_of_output(one))) not in opened:
            opened.add(section)
            layers += _read_section(one)
    return layers


def _is_volume_output(path: Path) -> bool:
    try:
        return "emseg-lite" in json.loads((path / ".zattrs").read_text())
    except (OSError, ValueError):
        return False


def _stem_of_output(path: Path) -> str | None:
    stem = path.stem
    if path.suffix.lower() in IMAGE_SUFFIXES and stem.endswith((_MASK, _PROB)):
        return stem[: stem.rindex("_")]
    return None


def _read_section(path: Path) -> list[LayerData]:
    stem, folder = _stem_of_output(path), path.parent
    literal = glob.escape(stem)
    inputs = [p for p in folder.glob(f"{literal}.*") if p.suffix.lower() in IMAGE_SUFFIXES
              and not p.stem.endswith(OUTPUT_TAGS)]
    found = {kind: next(iter(sorted(folder.glob(f"{literal}{kind}.*"))), None) for kind in (_MASK, _PROB)}
    layers, nm = [], None
    if inputs:
        pixels, nm = _pixels(inputs[0])
        layers.append((pixels, {"name": stem, "scale": _scale(pixels, nm)}, "image"))
    if found[_PROB] is not None:
        probability, own_nm = _pixels(found[_PROB])
        layers.append((probability, {"name": f"{stem} probability", "scale": _scale(probability, nm or own_nm),
                                     "colormap": "magma", "contrast_limits": (0.0, 1.0), "opacity": 0.5,
                                     "blending": "additive"}, "image"))
    if found[_MASK] is not None:
        mask, own_nm = _pixels(found[_MASK])
        membrane = (mask == _polarity().membrane_value).astype(np.uint8)
        layers.append((membrane, {"name": f"{stem} membrane", "scale": _scale(membrane, nm or own_nm)}, "labels"))
    return layers


def _pixels(path: Path) -> tuple[np.ndarray, float | None]:
    """A file's pages (2-D for one section) and its pixel size in nm, if it says."""
    with open_section(path) as section:
        pages = section.read_all().pages
        return (pages[0] if pages.shape[0] == 1 else pages), section.pixel_size_nm


def _scale(data: np.ndarray, nm: float | None) -> tuple[float, ...]:
    return (1.0,) * (data.ndim - 2) + ((nm, nm) if nm else (1.0, 1.0))


def _polarity():
    """The mask polarity of the default model's card: which value ``segment`` wrote for membrane."""
    return ModelCard.load(card_path_for(registry.resolve(None))).mask


def _read_volume(path: Path) -> list[LayerData]:
    import dask.array as da
    import zarr

    from ..formats.omezarr import placement

    group = zarr.open_group(str(path), mode="r")
    placed = placement(group)
    layers: list[LayerData] = []
    source = Path(group.attrs["emseg-lite"]["layout"]["input"])
    if source.exists():
        layers.append((_lazy_volume(source), {"name": source.name, **placed}, "image"))
    if "probabilities" in group:
        probabilities = da.from_zarr(group["probabilities"])
        top = 255.0 if probabilities.dtype == np.uint8 else 1.0
        layers.append((probabilities, {"name": f"{path.name} probability", **placed, "colormap": "magma",
                                       "contrast_limits": (0.0, top), "opacity": 0.5, "blending": "additive"},
                       "image"))
    for name in ("membrane", "regions", "fragments", "neurons"):
        if f"labels/{name}/0" in group:  # fragments and neurons once emseg-lite neurons has run
            layers.append((da.from_zarr(group[f"labels/{name}/0"]),
                           {"name": f"{path.name} {name}", **placement(group[f"labels/{name}"]),
                            "visible": name != "fragments"}, "labels"))
    return layers


def _lazy_volume(path: Path):
    """The input volume as a dask array that reads one z section when napari shows it."""
    import dask
    import dask.array as da

    from ..core.geometry import Region
    from ..formats.volumes import open_volume

    volume = open_volume(path)
    whole = Region(0, 0, volume.height, volume.width)

    def page(z: int) -> np.ndarray:
        with volume.lock:
            return volume.read(z, whole)

    shape = (volume.height, volume.width)
    return da.stack([da.from_delayed(dask.delayed(page)(z), shape, volume.dtype) for z in range(volume.pages)])
