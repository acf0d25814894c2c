"""Pixel sizes: read from the metadata microscopes write, in nm, and compared with the model's.

A network learns structures at the scale of its training data (ISBI 2012: 4 nm
per pixel): at twice that, membranes are half as thick to it. The runtime
cannot know an input's scale unless the file says it -- ImageJ TIFFs
(resolution and unit), OME-TIFF (PhysicalSizeX) and MRC (voxel size) do -- so
those are read, carried into the outputs and compared once with the card's.
"""
from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ElementTree

from ..core.errors import InputError

log = logging.getLogger(__name__)
NM_PER_UNIT = {
    "nm": 1.0, "nanometer": 1.0, "nanometre": 1.0,
    "um": 1e3, "µm": 1e3, "μm": 1e3, "\\u00b5m": 1e3, "micron": 1e3, "micrometer": 1e3, "micrometre": 1e3,
    "mm": 1e6, "millimeter": 1e6, "cm": 1e7, "m": 1e9, "meter": 1e9,
    "a": 0.1, "å": 0.1, "angstrom": 0.1, "ångström": 0.1, "pm": 1e-3,
}
TOLERANCE = 0.25
"""An input is 'at another scale' when its pixel size differs from the model's by more than a quarter."""


def to_nm(value: float, unit: str | None) -> float | None:
    if unit is None or value is None or not value > 0:
        return None
    factor = NM_PER_UNIT.get(unit.strip().lower())
    return None if factor is None else float(value) * factor


def from_imagej(metadata: dict, xresolution) -> float | None:
    """ImageJ: XResolution is pixels per ``unit`` (a rational); no unit means pixels."""
    unit = metadata.get("unit")
    if xresolution is None or not unit:
        return None
    value = xresolution.value
    numerator, denominator = value if isinstance(value, tuple) else (value, 1)
    if not numerator:
        return None
    return to_nm(denominator / numerator, unit)


def from_ome(xml: str | None) -> float | None:
    """OME-XML: the first image's PhysicalSizeX, in PhysicalSizeXUnit (µm by default)."""
    if not xml:
        return None
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return None
    for element in root.iter():
        if re.sub(r"^\{.*\}", "", element.tag) == "Pixels" and "PhysicalSizeX" in element.attrib:
            try:
                size = float(element.attrib["PhysicalSizeX"])
            except ValueError:
                return None
            return to_nm(size, element.attrib.get("PhysicalSizeXUnit", "µm"))
    return None


def differs(pixel_nm: float | None, model_nm: float | None) -> bool:
    """Both known, and more than a quarter apart."""
    if not pixel_nm or not model_nm:
        return False
    return abs(pixel_nm - model_nm) > TOLERANCE * model_nm


class ScaleCheck:
    """Each input's pixel size against the model's: with ``resample``, the scale to
    resample it by; without, a warning once per run when the two differ.

    ``pixel_size_nm`` states the inputs' pixel size where their files do not (or
    overrides what they say). Resampling is off by default: it helped ISBI sections
    imaged coarser or finer, but made FIB-SEM worse at its probable pixel size, and
    metadata cannot tell the two apart (docs/pixel-size.md).
    """

    def __init__(self, model_nm: float | None, resample: bool = False, pixel_size_nm: float | None = None):
        self.model_nm = model_nm
        self.resample = resample
        self.pixel_size_nm = pixel_size_nm
        self.said = False

    def check(self, section) -> float | None:
        """``section``: an ``section.Section`` (its ``path`` and ``pixel_size_nm``). Returns the
        scale (model pixels per input pixel) to resample it by, or None for none.

        Raises ``InputError`` when resampling is asked for and a pixel size is unknown."""
        pixel_nm = self.pixel_size_nm or section.pixel_size_nm
        if self.resample:
            if not pixel_nm:
                raise InputError(section.path, "pixel size unknown (no ImageJ, OME or MRC metadata) to resample "
                                 "from: give --pixel-size-nm")
            if not self.model_nm:
                raise InputError(section.path, "the model's card states no pixel size to resample to")
            return pixel_nm / self.model_nm
        if not self.said and differs(pixel_nm, self.model_nm):
            self.said = True
            log.warning("%s: pixels of %.3g nm, but the model learnt sections of %.3g nm: membranes look %s to "
                        "it than in training; results may be poorer (fine-tune on your data, or --resample; "
                        "see docs/pixel-size.md)", section.path, pixel_nm, self.model_nm,
                        "thinner" if pixel_nm > self.model_nm else "thicker")
        return None
