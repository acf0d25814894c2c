"""The package's cover: a real section and its mask side by side (2:1, as the zoo asks)."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from emseg_lite.runtime.core.card import MaskPolarity, Normalization
from emseg_lite.runtime.engine.intensity import intensity_range, normalize


def cover_png(image: np.ndarray, membrane: np.ndarray, spec: Normalization, polarity: MaskPolarity) -> bytes:
    """PNG of ``image`` (as the network sees it, stretched to 0-255) | its mask in the card's polarity.

    ``membrane`` is the (h, w) bool mask, True = membrane.
    """
    gray = np.round(normalize(image, *intensity_range(image, spec)) * 255).astype(np.uint8)
    mask = np.where(membrane, polarity.membrane_value, polarity.cell_value).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(np.hstack([gray, mask])).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
