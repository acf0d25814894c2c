"""Scoring membrane probability maps against labels, per slice and on average.

Training validation, the export agreement checks and ``emseg-lite evaluate`` all
call ``score_volume`` (or ``score_maps``) so that every reported V_rand is
computed the same way. The V_rand / V_info definition (``metrics.METRICS``) is
the labels' own by default: ISBI's for membrane masks, the adapted Rand of
SNEMI3D / CREMI for instance ids; every report and card says which it used.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import numpy as np

from ..core.card import Evaluation, PostProcessing, Scores
from ..core.errors import InputError
from ..post.metrics import ChallengeScores, ObjectScores, challenge_scores, mean_scores, object_scores, score_slice
from ..post.objects import unpooled
from ..post.postprocess import membrane_mask
from .datasets import LabeledVolume


@dataclass
class Report:
    """Per-slice scores for each post-processing method, in slice order, under one ``metric``."""

    names: list[str]
    per_slice: dict[str, list[Scores]]
    metric: str = "isbi"
    challenge: Optional[ChallengeScores] = None
    """The ISBI 2012 leaderboard's figures, for membrane-mask labels (``metrics.challenge_scores``)."""

    def mean(self, method: str) -> Scores:
        return mean_scores(self.per_slice[method])

    def evaluation(self) -> Evaluation:
        return Evaluation(threshold=self.mean("none"), watershed=self.mean("watershed"), metric=self.metric)

    def to_dict(self) -> dict:
        return {
            "metric": self.metric,
            **({"challenge": dataclasses.asdict(self.challenge)} if self.challenge else {}),
            **{
                method: {
                    "slices": [{"name": n, **dataclasses.asdict(s)} for n, s in zip(self.names, scores)],
                    "mean": dataclasses.asdict(self.mean(method)),
                }
                for method, scores in self.per_slice.items()
            },
        }


def both_methods(post: PostProcessing) -> dict[str, PostProcessing]:
    """The card's parameters run once as plain threshold and once as watershed."""
    return {m: dataclasses.replace(post, method=m) for m in ("none", "watershed")}


def score_maps(probabilities: Iterable[np.ndarray], truths: np.ndarray, names: list[str],
               posts: dict[str, PostProcessing], truth_regions: Optional[np.ndarray] = None,
               metric: str = "isbi") -> Report:
    """Score (h, w) membrane probability maps against bool membrane truths
    (and their regions, when these are not the truths' own: instance labels)."""
    per_slice: dict[str, list[Scores]] = {method: [] for method in posts}
    regions = truth_regions if truth_regions is not None else [None] * len(truths)
    for probability, truth, region in zip(probabilities, truths, regions):
        for method, post in posts.items():
            per_slice[method].append(score_slice(membrane_mask(probability, post), truth, region, metric))
    return Report(list(names), per_slice, metric)


def score_volume(probabilities: Iterable[np.ndarray], volume: LabeledVolume, posts: dict[str, PostProcessing],
                 metric: Optional[str] = None) -> Report:
    """``score_maps`` against a labelled volume, by default with its labels' own metric."""
    return score_maps(probabilities, volume.membrane, volume.names, posts, volume.regions, metric or volume.metric)


def evaluate_volume(predict: Callable[[np.ndarray], np.ndarray], volume: LabeledVolume,
                    post: PostProcessing, metric: Optional[str] = None) -> Report:
    """Run ``predict`` (slice -> membrane probability) over a volume and score it; for
    membrane masks also with the ISBI challenge's threshold sweep."""
    maps = [predict(image) for image in volume.images]
    report = score_volume(maps, volume, both_methods(post), metric)
    if volume.kind == "membrane":
        report.challenge = challenge_scores(np.stack(maps), volume.regions)
    return report


OBJECT_LABELS = ("neurons", "fragments", "regions")
"""The label images of a volume output that ``score_objects`` scores, when present."""


def score_objects(group, truth: np.ndarray, source) -> dict[str, ObjectScores]:
    """3-D scores of a volume output's label images (an open zarr group) against instance
    ids ``truth`` (z, y, x; 0 = boundary, not scored); ``source`` names the output in errors."""
    present = [name for name in OBJECT_LABELS if f"labels/{name}/0" in group]
    shape = group["labels/membrane/0"].shape
    if truth.shape != tuple(shape):
        raise InputError(source, f"holds a {' x '.join(map(str, shape))} volume; the labels are "
                                 f"{' x '.join(map(str, truth.shape))}")
    return {name: object_scores(truth, _on_every_pixel(group, name)) for name in present}


def _on_every_pixel(group, name: str) -> np.ndarray:
    """A label image on the sections' pixels: fragments are stored on the objects' working pixel."""
    ids = np.asarray(group[f"labels/{name}/0"])
    if name != "fragments":
        return ids
    pool = int(group.attrs["emseg-lite"]["objects"].get("pool", 1))
    return unpooled(ids, pool, *group["labels/membrane/0"].shape[1:], ids.dtype)
