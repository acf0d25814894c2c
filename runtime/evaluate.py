"""Scoring membrane probability maps against labels, per slice and on average.

Training validation, the export agreement checks and ``emseg-lite evaluate`` all
call ``score_maps`` so that every reported V_rand is computed the same way.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from .card import Evaluation, PostProcessing, Scores
from .datasets import LabeledVolume
from .metrics import mean_scores, score_slice
from .postprocess import membrane_mask


@dataclass
class Report:
    """Per-slice scores for each post-processing method, in slice order."""

    names: list[str]
    per_slice: dict[str, list[Scores]]

    def mean(self, method: str) -> Scores:
        return mean_scores(self.per_slice[method])

    def evaluation(self) -> Evaluation:
        return Evaluation(threshold=self.mean("none"), watershed=self.mean("watershed"))

    def to_dict(self) -> dict:
        return {
            method: {
                "slices": [{"name": n, **dataclasses.asdict(s)} for n, s in zip(self.names, scores)],
                "mean": dataclasses.asdict(self.mean(method)),
            }
            for method, scores in self.per_slice.items()
        }


def both_methods(post: PostProcessing) -> dict[str, PostProcessing]:
    """The card's parameters run once as plain threshold and once as watershed."""
    return {m: dataclasses.replace(post, method=m) for m in ("none", "watershed")}


def score_maps(probabilities: Iterable[np.ndarray], truths: np.ndarray, names: list[str],
               posts: dict[str, PostProcessing]) -> Report:
    """Score (h, w) membrane probability maps against bool membrane truths."""
    per_slice: dict[str, list[Scores]] = {method: [] for method in posts}
    for probability, truth in zip(probabilities, truths):
        for method, post in posts.items():
            per_slice[method].append(score_slice(membrane_mask(probability, post), truth))
    return Report(list(names), per_slice)


def evaluate_volume(predict: Callable[[np.ndarray], np.ndarray], volume: LabeledVolume,
                    post: PostProcessing) -> Report:
    """Run ``predict`` (slice -> membrane probability) over a volume and score it."""
    maps = (predict(image) for image in volume.images)
    return score_maps(maps, volume.membrane, volume.names, both_methods(post))
