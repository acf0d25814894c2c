"""How closely an exported model reproduces the full Keras model, on validation sections.

Agreement is measured on the network's own decision -- masks thresholded at the
card's threshold -- so that it judges conversion and quantisation, not the
post-processing (a watershed can move a 1-pixel border for a tiny change in
probability). The V_rand difference uses the card's full post-processing. The
largest probability difference is recorded for every variant and gated only
where a limit is given: float formats (ONNX) must reproduce the probabilities
themselves, int8 only the masks.
"""
from __future__ import annotations

import numpy as np

from emseg_lite.runtime.core.card import Agreement, PostProcessing
from emseg_lite.runtime.post.metrics import membrane_dice

DEFAULT_FLOOR = 0.99


def agreement(variant_maps: list[np.ndarray], full_maps: list[np.ndarray], post: PostProcessing,
              v_rand_variant: float, v_rand_full: float, floor: float,
              max_abs_diff_limit: float | None = None) -> Agreement:
    variant_probability, full_probability = np.stack(variant_maps), np.stack(full_maps)
    variant, full = variant_probability > post.threshold, full_probability > post.threshold
    pixel_agreement = float(np.mean(variant == full))
    max_abs_diff = float(np.max(np.abs(variant_probability - full_probability)))
    return Agreement(
        pixel_agreement=pixel_agreement,
        membrane_dice=membrane_dice(variant, full),
        v_rand_diff=v_rand_variant - v_rand_full,
        floor=floor,
        passed=pixel_agreement >= floor and (max_abs_diff_limit is None or max_abs_diff <= max_abs_diff_limit),
        max_abs_diff=max_abs_diff,
        max_abs_diff_limit=max_abs_diff_limit,
    )
