"""Choices made on validation after training: post-processing and tiling halo.

Post-processing parameters are picked from a small grid (few parameters, so
little room to overfit them) by the mean of V_rand and V_info over the
held-out sections: the shipped model is judged on both, and a setting that buys
V_rand with merges pays for it in V_info. Post-processing runs on every slice a
microscope produces, so among settings within ``SCORE_TIE`` of the best the
cheapest wins: fewest flooding levels (each costs a nearest-label fill, a few
ms per 512 x 512 slice), and thresholding over any watershed.
The halo is the smallest multiple of the network's alignment for which tiled
prediction stays within ``tolerance`` of one exact whole-slice pass: the
theoretical receptive field of a deep U-Net is ~120 px, but its influence fades
long before, and every halo pixel costs inference time.
"""
from __future__ import annotations

import itertools
import logging

import numpy as np

from emseg_lite.runtime.core.card import Normalization, PostProcessing
from emseg_lite.runtime.engine.tiling import TileGrid
from emseg_lite.runtime.pipelines.datasets import LabeledVolume
from emseg_lite.runtime.pipelines.evaluate import score_volume

from .keras2 import keras
from .predict import predict_slice, predict_tiled

log = logging.getLogger(__name__)

THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6)
SEED_THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.3)
"""Finest where it matters: between 0.1 and 0.2 one step moves V_rand and V_info by ~0.001."""
SIGMAS = (1.0, 2.0, 3.0)
MIN_SEED_AREAS = (1, 16)
LEVELS = (1, 2, 4)
SCORE_TIE = 0.0005
"""Differences below this are about what merging two small neurites on one of the
five sections moves the mean: noise, not a better setting."""
HALO_TOLERANCE = 1.0 / 256
"""One step of an int8 output tensor: context beyond this halo moves the
probability by less than the shipped model can represent."""


def choose_postprocessing(maps: list[np.ndarray], volume: LabeledVolume,
                          sigmas: tuple[float, ...] = SIGMAS) -> PostProcessing:
    """The best post-processing of ``maps`` (one per section of ``volume``) under the volume's metric."""
    def score(post: PostProcessing) -> float:
        mean = score_volume(maps, volume, {"p": post}).mean("p")
        return (mean.v_rand + mean.v_info) / 2

    plain = {t: score(PostProcessing(method="none", threshold=t)) for t in THRESHOLDS}
    threshold = max(plain, key=plain.get)
    scored = [(plain[threshold], PostProcessing(method="none", threshold=threshold))]
    for seed, sigma, area, levels in itertools.product(SEED_THRESHOLDS, sigmas, MIN_SEED_AREAS, LEVELS):
        candidate = PostProcessing("watershed", threshold, seed, area, sigma, levels)
        scored.append((score(candidate), candidate))
    best = max(s for s, _ in scored)
    chosen_score, chosen = min(((s, p) for s, p in scored if s >= best - SCORE_TIE),
                               key=lambda sp: (_cost(sp[1]), -sp[0]))
    log.info("post-processing chosen on validation: %s (mean of V_rand and V_info %.4f, best %.4f)",
             chosen, chosen_score, best)
    return chosen


def _cost(post: PostProcessing) -> int:
    return 0 if post.method == "none" else post.levels


def effective_halo(model: keras.Model, images: np.ndarray, spec: Normalization, exact_halo: int, align: int,
                   tolerance: float = HALO_TOLERANCE, core: int = 128) -> tuple[int, float]:
    """(halo, max |tiled - whole|) for the smallest halo within ``tolerance``."""
    references = [predict_slice(model, image, spec, exact_halo, align) for image in images]
    for halo in range(align, exact_halo + 1, align):
        grid = TileGrid(core + 2 * halo, halo, align)
        error = max(float(np.abs(predict_tiled(model, image, spec, grid) - ref).max())
                    for image, ref in zip(images, references))
        log.info("halo %d px: max |tiled - whole| = %.5f", halo, error)
        if error <= tolerance:
            return halo, error
    return exact_halo, 0.0

