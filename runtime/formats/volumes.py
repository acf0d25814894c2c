"""Volumes as stacks of sections: OME-Zarr (0.4 and 0.5), plain zarr, TIFF stacks, folders.

``open_volume`` returns an ``section.Section`` whose pages are the volume's z
sections, readable by region like any section, so that the volume command
runs the same block-wise core as ``segment``. Only what a block needs is read:
zarr by chunks, TIFF stacks through ``tiff``, a folder one file at a time.
Pixel sizes and units come from the OME metadata where there is some.

zarr is imported here, so this module needs the ``volume`` extra.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..core.geometry import Region
from .pixelsize import to_nm
from .reader import image_files, open_section
from .section import Section, check_dtype, check_size


@dataclass(frozen=True)
class Scale:
    """Physical size of a voxel along z, y, x, in ``unit`` (None where unknown)."""

    z: float | None = None
    y: float | None = None
    x: float | None = None
    unit: str | None = None

    def with_pixel_size(self, pixel_size_nm: float) -> Scale:
        """This scale with the section plane's pixel size the user stated (``--pixel-size-nm``),
        in nm: the section spacing is kept where its unit converts to nm."""
        return Scale(to_nm(self.z, self.unit), pixel_size_nm, pixel_size_nm, "nanometer")


class VolumeSection(Section):
    """A section whose pages are z sections, with the voxel scale when the source says it."""

    scale: Scale = Scale()


def open_volume(path: str | Path) -> VolumeSection:
    """Open a volume: an OME-Zarr image, a zarr array, a TIFF stack or a folder of sections."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or folder")
    if path.is_dir() and _is_zarr(path):
        return _open_zarr(path)
    if path.is_dir():
        return _FolderVolume(path)
    section = open_section(path)
    return _TiffVolume(section)


def _is_zarr(path: Path) -> bool:
    return any((path / name).is_file() for name in (".zgroup", ".zarray", "zarr.json"))


class _TiffVolume(VolumeSection):
    """A multi-page TIFF (or MRC): its pages, read by region."""

    def __init__(self, section: Section):
        super().__init__(section.path, section.pages, section.height, section.width, section.dtype, section.notes,
                         section.pixel_size_nm)
        self._section = section
        if section.pixel_size_nm:
            self.scale = Scale(None, section.pixel_size_nm, section.pixel_size_nm, "nanometer")

    def read(self, page: int, region: Region) -> np.ndarray:
        return self._section.read(page, region)

    def close(self) -> None:
        self._section.close()


class _FolderVolume(VolumeSection):
    """Single-section image files, z in natural order (``2.png`` before ``10.png``)."""

    def __init__(self, folder: Path):
        files = image_files(folder)
        if not files:
            raise InputError(folder, "no images (.png, .jpg, .tif) in this folder")
        with open_section(files[0]) as first:
            if first.pages != 1:
                raise InputError(files[0], f"holds {first.pages} sections; a volume folder needs one per file")
            shape, dtype = first.shape, first.dtype
        super().__init__(folder, len(files), *shape, dtype, [])
        self.files = files
        self._open: tuple[int, Section] | None = None

    def read(self, page: int, region: Region) -> np.ndarray:
        if self._open is None or self._open[0] != page:
            self.close()
            section = open_section(self.files[page])
            if section.pages != 1 or section.shape != self.shape or section.dtype != self.dtype:
                section.close()
                raise InputError(self.files[page], f"is {section.pages} x {section.width} x {section.height} "
                                                   f"{section.dtype}, unlike the first section of {self.path} "
                                                   f"(1 x {self.width} x {self.height} {self.dtype})")
            self._open = (page, section)
        return self._open[1].read(0, region)

    def close(self) -> None:
        if self._open is not None:
            self._open[1].close()
            self._open = None


class _ZarrVolume(VolumeSection):
    """A zarr array of (z, y, x) or (y, x), other axes of size 1 (OME-Zarr's t and c)."""

    def __init__(self, path: Path, array, axes: list[str], scale: Scale):
        shape = dict(zip(axes, array.shape))
        for name, size in shape.items():
            if name not in "zyx" and size != 1:
                raise InputError(path, f"axis {name!r} has {size} entries; emseg-lite segments one channel "
                                       f"and time point (axes {''.join(axes)}, shape {array.shape})")
        check_size(path, (shape["y"], shape["x"]), 1 << 40)
        dtype = check_dtype(path, np.zeros(0, array.dtype)).dtype
        super().__init__(path, shape.get("z", 1), shape["y"], shape["x"], dtype, [],
                         to_nm(scale.x, scale.unit) if scale.x else None)
        self.array = array
        self.axes = axes
        self.scale = scale

    def read(self, page: int, region: Region) -> np.ndarray:
        index = tuple(page if a == "z" else region.slices[0] if a == "y" else region.slices[1] if a == "x" else 0
                      for a in self.axes)
        try:
            data = np.asarray(self.array[index])
        except Exception as exc:  # codecs and stores raise their own types; any failure is this chunk's
            raise InputError(self.path, f"cannot read section {page}, rows {region.y0}-{region.y1}, "
                                        f"columns {region.x0}-{region.x1} ({type(exc).__name__}: {exc})") from None
        return check_dtype(self.path, data)


def _open_zarr(path: Path) -> VolumeSection:
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:
        raise InputError(path, f"not a readable zarr store ({type(exc).__name__}: {exc})") from None
    if isinstance(node, zarr.Array):
        if node.ndim not in (2, 3):
            raise InputError(path, f"a zarr array of {node.ndim} dimensions; expected (z, y, x) or (y, x)")
        return _ZarrVolume(path, node, list("zyx"[3 - node.ndim :]), Scale())
    attrs = node.attrs.asdict()
    multiscales = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    if not multiscales:
        raise InputError(path, "a zarr group without OME 'multiscales' metadata; give the image or array inside it")
    image = multiscales[0]
    dataset = image["datasets"][0]
    axes = [a["name"] if isinstance(a, dict) else a for a in image.get("axes", ["t", "c", "z", "y", "x"])]
    units = {a["name"]: a.get("unit") for a in image.get("axes", []) if isinstance(a, dict)}
    scale = _scale(axes, units, dataset.get("coordinateTransformations", []),
                   image.get("coordinateTransformations", []))
    array = node[dataset["path"]]
    if len(axes) != array.ndim or not {"y", "x"} <= set(axes):
        raise InputError(path, f"OME axes {axes} do not fit the array's shape {array.shape}")
    return _ZarrVolume(path, array, axes, scale)


def _scale(axes: list[str], units: dict, *transform_lists) -> Scale:
    factors = np.ones(len(axes))
    for transforms in transform_lists:
        for transform in transforms:
            if transform.get("type") == "scale":
                factors *= np.asarray(transform["scale"], dtype=float)
    size = dict(zip(axes, factors))
    unit = units.get("x") or units.get("y")
    known = any(transform.get("type") == "scale" for transforms in transform_lists for transform in transforms)
    if not known:
        return Scale()
    return Scale(size.get("z"), size.get("y"), size.get("x"), unit)

