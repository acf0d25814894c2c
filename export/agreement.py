"""How closely a TFLite variant reproduces the full Keras model, on validation sections.

Agreement is measured on the network's own decision -- masks thresholded at the
card's threshold -- so that it judges conversion and quantisation, not the
post-processing (a watershed can move a 1-pixel border for a tiny change in
probability). The V_rand difference uses the card's full post-processing.
"""
from __future__ import annotations

import numpy as np

from emseg_lite.runtime.card import Agreement, PostProcessing
from emseg_lite.runtime.metrics import membrane_dice

DEFAULT_FLOOR = 0.99


def agreement(variant_maps: list[np.ndarray], full_maps: list[np.ndarray], post: PostProcessing,
              v_rand_variant: float, v_rand_full: float, floor: float) -> Agreement:
    variant = np.stack(variant_maps) > post.threshold
    full = np.stack(full_maps) > post.threshold
    pixel_agreement = float(np.mean(variant == full))
    return Agreement(
        pixel_agreement=pixel_agreement,
        membrane_dice=membrane_dice(variant, full),
        v_rand_diff=v_rand_variant - v_rand_full,
        floor=floor,
        passed=pixel_agreement >= floor,
    )
