"""ISBI 2012 segmentation figures, in plain numpy.

One module for every caller -- training validation, the export agreement gate,
``emseg-lite evaluate`` and the benchmarks -- so a figure means the same thing
everywhere.

Inputs are boolean membrane maps (True = membrane) of one section. Regions are
the 4-connected components of non-membrane pixels; 4-connectivity because a
closed 1-pixel (8-connected) boundary separates regions only under it.

V_rand and V_info follow Arganda-Carreras et al. (2015), "Crowdsourcing the
creation of image segmentation algorithms for connectomics", Front. Neuroanat.
9:142: foreground-restricted (only pixels that are cell interior in the ground
truth count) after border thinning (the proposal's membrane pixels are handed to
neighbouring regions until none is left inside the ground-truth foreground).
With p_ij the joint distribution of (ground truth region i, proposed region j),
t_i and s_j its marginals:

    V_rand = sum p_ij^2 / (0.5 sum t_i^2 + 0.5 sum s_j^2)   (eq. 3, alpha = 0.5)
    V_info = I(S;T) / (0.5 H(T) + 0.5 H(S))                  (eq. 6, alpha = 0.5)

Both are 1 for a perfect segmentation and fall towards 0 with splits and merges.

Two definitions (``METRICS``), differing only in what happens to the proposal's
own membrane pixels that lie on ground-truth foreground:

* ``isbi``: border thinning as above (ISBI 2012, membrane-mask ground truth);
* ``adapted``: no thinning; each such pixel counts as a segment of its own
  (a singleton), as in the adapted Rand of SNEMI3D and CREMI, whose ground
  truth is instance ids. A 1-pixel watershed border costs little either way;
  a thick thresholded membrane costs more here.

Ground truth regions come from the caller (``labels.truth_regions``): from a
membrane mask or from instance ids.

Two more figures make results comparable with the literature:

* ``challenge_scores``: the ISBI 2012 leaderboard's own numbers -- the proposal's
  cell probability binarised at 0.0, 0.1, ..., 1.0, V_rand and V_info (``isbi``)
  averaged over sections at each threshold, and the best of each over the sweep
  (``getMaximalVRandAfterThinning(0, 1, 0.1, perSliceAverage)`` of Fiji's
  Trainable Segmentation, the challenge's scorer; its thinning is a watershed of
  the binary proposal, here the 3 x 3 dilation of the challenge's Python helper);
* ``object_scores``: 3-D objects against 3-D ground truth (neurons), as gala,
  CREMI and SNEMI3D report them -- variation of information split H(S|T) and
  merge H(T|S) in bits, and the adapted Rand F-score, on ground-truth foreground
  (ids > 0); a proposal's 0 voxels there count as singletons, as in ``adapted``
  (a proposal that covers every voxel, like ``labels/neurons``, has none).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.card import Scores
from .regions import label

METRICS = ("isbi", "adapted")
CHALLENGE_THRESHOLDS = tuple(round(0.1 * i, 1) for i in range(11))


def regions(membrane: np.ndarray) -> np.ndarray:
    """Label the 4-connected non-membrane regions 1..n; membrane pixels are 0."""
    return label(~membrane)[0]


def pixel_error(pred: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of pixels whose membrane/cell class differs."""
    return float(np.mean(pred != truth))


def membrane_dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice overlap of the membrane pixels (1.0 when both have none)."""
    total = int(pred.sum()) + int(truth.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(pred, truth).sum()) / total


def thin_borders(proposal_labels: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """Give every unlabelled (0) pixel inside ``foreground`` the largest neighbouring label.

    Repeated 3x3 dilation into the 0 pixels, as in the challenge's evaluation.
    A proposal with no region at all stays 0 (one big 'region' of border).
    """
    labels = proposal_labels.copy()
    if labels.max() == 0:
        return labels
    while True:
        zeros = labels == 0
        if not np.any(zeros & foreground):
            return labels
        grown = _max_of_3x3(labels)
        labels[zeros] = grown[zeros]


def _max_of_3x3(labels: np.ndarray) -> np.ndarray:
    """Largest value in each pixel's 3 x 3 neighbourhood (edges see only what is inside)."""
    grown = labels.copy()
    grown[1:] = np.maximum(grown[1:], labels[:-1])
    grown[:-1] = np.maximum(grown[:-1], labels[1:])
    rows = grown.copy()
    grown[:, 1:] = np.maximum(grown[:, 1:], rows[:, :-1])
    grown[:, :-1] = np.maximum(grown[:, :-1], rows[:, 1:])
    return grown


def _joint_distribution(truth_labels: np.ndarray, proposal_labels: np.ndarray, metric: str):
    """Joint and marginal distributions over the ground-truth foreground pixels."""
    foreground = truth_labels > 0
    if metric == "isbi":
        proposal = _dense(thin_borders(proposal_labels, foreground)[foreground])
    elif metric == "adapted":
        raw = proposal_labels[foreground]
        proposal = _dense(raw)
        border = raw == 0
        proposal[border] = int(proposal.max(initial=0)) + 1 + np.arange(int(border.sum()))
    else:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    if not foreground.any():
        return None
    truth = _dense(truth_labels[foreground])
    _, pair_counts = np.unique(truth * (int(proposal.max()) + 1) + proposal, return_counts=True)
    truth_counts = np.bincount(truth)
    proposal_counts = np.bincount(proposal)
    proposal_counts = proposal_counts[proposal_counts > 0]
    n = float(truth.size)
    return pair_counts / n, truth_counts / n, proposal_counts / n


def _dense(ids: np.ndarray) -> np.ndarray:
    """Ids renamed 0..k-1 in order (int64): pair keys then stay far from overflow for any id width."""
    return np.unique(ids, return_inverse=True)[1].reshape(-1).astype(np.int64)


def rand_and_info(pred: np.ndarray, truth: np.ndarray, metric: str = "isbi") -> tuple[float, float]:
    """(V_rand, V_info) of membrane map ``pred`` against membrane map ``truth``."""
    return rand_and_info_of_labels(regions(truth), regions(pred), metric)


def rand_and_info_of_labels(truth_labels: np.ndarray, proposal_labels: np.ndarray,
                            metric: str = "isbi") -> tuple[float, float]:
    """(V_rand, V_info) of two label images; label 0 is border in both."""
    dist = _joint_distribution(truth_labels, proposal_labels, metric)
    if dist is None:
        return 1.0, 1.0
    pair, t, s = dist
    v_rand = float(np.sum(pair**2) / (0.5 * np.sum(t**2) + 0.5 * np.sum(s**2)))
    h_pair, h_t, h_s = (float(-np.sum(p * np.log(p))) for p in (pair, t, s))
    mutual = h_t + h_s - h_pair
    denominator = 0.5 * h_t + 0.5 * h_s
    v_info = 1.0 if denominator == 0 else float(mutual / denominator)
    return v_rand, v_info


def score_slice(pred: np.ndarray, truth: np.ndarray, truth_regions: np.ndarray | None = None,
                metric: str = "isbi") -> Scores:
    """All four figures for one section: ``pred`` and ``truth`` bool (True = membrane);
    ``truth_regions`` the ground-truth regions if not those of ``truth`` (instance labels)."""
    if pred.shape != truth.shape:
        raise ValueError(f"prediction {pred.shape} and truth {truth.shape} differ in shape")
    truth_regions = regions(truth) if truth_regions is None else truth_regions
    v_rand, v_info = rand_and_info_of_labels(truth_regions, regions(pred), metric)
    return Scores(pixel_error(pred, truth), membrane_dice(pred, truth), v_rand, v_info)


def mean_scores(scores: list[Scores]) -> Scores:
    return Scores(*(float(np.mean([getattr(s, f) for s in scores])) for f in Scores.__dataclass_fields__))


@dataclass(frozen=True)
class ChallengeScores:
    """The ISBI 2012 leaderboard's figures: the best mean V_rand and V_info (thinned) over
    the threshold sweep, each with the cell-probability threshold that gave it."""

    v_rand: float
    v_rand_threshold: float
    v_info: float
    v_info_threshold: float


def challenge_scores(membrane_probabilities, truth_regions: np.ndarray) -> ChallengeScores:
    """``membrane_probabilities`` (n, h, w) in [0, 1]; ``truth_regions`` (n, h, w), 0 = membrane."""
    cell = 1.0 - np.asarray(membrane_probabilities, dtype=np.float32)
    sweep = []
    for threshold in CHALLENGE_THRESHOLDS:
        scores = [rand_and_info_of_labels(truth, label(section > threshold)[0], "isbi")
                  for section, truth in zip(cell, truth_regions)]
        sweep.append((threshold, *np.mean(scores, axis=0)))
    best_rand = max(sweep, key=lambda row: row[1])
    best_info = max(sweep, key=lambda row: row[2])
    return ChallengeScores(float(best_rand[1]), best_rand[0], float(best_info[2]), best_info[0])


@dataclass(frozen=True)
class ObjectScores:
    """3-D figures of objects: VI split and merge (bits; 0 is perfect) and adapted Rand F (1 is perfect)."""

    vi_split: float
    vi_merge: float
    arand_f: float

    @property
    def vi(self) -> float:
        return self.vi_split + self.vi_merge


def object_scores(truth_ids: np.ndarray, proposal_ids: np.ndarray) -> ObjectScores:
    """Scores of ``proposal_ids`` against ``truth_ids`` (same shape, any dimension; truth 0 not scored)."""
    if truth_ids.shape != proposal_ids.shape:
        raise ValueError(f"proposal {proposal_ids.shape} and truth {truth_ids.shape} differ in shape")
    dist = _joint_distribution(truth_ids, proposal_ids, "adapted")
    if dist is None:
        return ObjectScores(0.0, 0.0, 1.0)
    pair, t, s = dist
    h_pair, h_t, h_s = (float(-np.sum(p * np.log2(p))) for p in (pair, t, s))
    arand_f = float(np.sum(pair**2) / (0.5 * np.sum(t**2) + 0.5 * np.sum(s**2)))
    return ObjectScores(max(h_pair - h_t, 0.0), max(h_pair - h_s, 0.0), arand_f)
