"""ISBI metrics against small cases computed by hand."""
import numpy as np
import pytest

from emseg_lite.runtime.post import metrics


def membrane_from(rows: list[str]) -> np.ndarray:
    """'#' = membrane, '.' = cell."""
    return np.array([[c == "#" for c in row] for row in rows])


TRUTH = membrane_from([
    "..#..",
    "..#..",
    "..#..",
])


def test_perfect_prediction_scores_one():
    s = metrics.score_slice(TRUTH, TRUTH)
    assert (s.pixel_error, s.membrane_dice, s.v_rand, s.v_info) == (0.0, 1.0, 1.0, 1.0)


def test_merge_of_two_equal_regions():
    # Prediction has no membrane: one region covering both 6-pixel truth regions.
    # Over the 12 foreground pixels p = (1/2, 1/2), t = (1/2, 1/2), s = (1):
    # V_rand = 0.5 / (0.5 * 0.5 + 0.5 * 1) = 2/3.
    # H(T) = ln 2, H(S) = 0, H(S,T) = ln 2 -> I = 0 -> V_info = 0.
    pred = np.zeros_like(TRUTH)
    v_rand, v_info = metrics.rand_and_info(pred, TRUTH)
    assert v_rand == pytest.approx(2 / 3)
    assert v_info == pytest.approx(0.0)
    assert metrics.pixel_error(pred, TRUTH) == pytest.approx(3 / 15)
    assert metrics.membrane_dice(pred, TRUTH) == 0.0


def test_split_of_one_region():
    truth = np.zeros((2, 4), bool)            # one region of 8 pixels
    pred = membrane_from(["....", "...."])
    pred[:, 2] = True                         # a vertical membrane at column 2
    # Thinning hands column 2 to the larger label (right region, columns 2-3),
    # so the proposal has regions of 4 and 4 pixels: sum s^2 = 1/2, sum t^2 = 1,
    # sum p^2 = 1/2 -> V_rand = 0.5 / 0.75 = 2/3. H(T) = 0, H(S) = ln 2, I = 0 -> V_info = 0.
    v_rand, v_info = metrics.rand_and_info(pred, truth)
    assert v_rand == pytest.approx(2 / 3)
    assert v_info == pytest.approx(0.0)


def test_unequal_split_hand_computed():
    truth = np.zeros((1, 10), bool)           # 10 foreground pixels, one region
    pred = np.zeros((1, 10), bool)
    pred[0, 2] = True                         # splits into 2 | 1 | 7, thinned to 2 | 8
    # s = (0.2, 0.8): sum s^2 = 0.68; t = (1): sum t^2 = 1; p = s: sum p^2 = 0.68.
    v_rand, _ = metrics.rand_and_info(pred, truth)
    assert v_rand == pytest.approx(0.68 / (0.5 + 0.34))


def test_mixed_split_and_merge_hand_computed():
    # Two truth regions of 2 pixels; the proposal's middle region takes one pixel of each.
    truth_labels = np.array([[1, 1, 2, 2]])
    pred_labels = np.array([[1, 3, 3, 2]])
    # p = (1/4 x 4), t = (1/2, 1/2), s = (1/4, 1/2, 1/4)
    # V_rand = 0.25 / (0.5 * 0.5 + 0.5 * 0.375) = 0.25 / 0.4375 = 4/7
    # H(T) = ln 2, H(S) = 1.5 ln 2, H(S,T) = 2 ln 2 -> I = 0.5 ln 2
    # V_info = 0.5 ln 2 / (0.5 ln 2 + 0.75 ln 2) = 0.4
    v_rand, v_info = metrics.rand_and_info_of_labels(truth_labels, pred_labels)
    assert v_rand == pytest.approx(4 / 7)
    assert v_info == pytest.approx(0.4)


def test_truth_membrane_pixels_do_not_count():
    # A prediction that differs from the truth only on truth-membrane pixels keeps V_rand = 1.
    pred = TRUTH.copy()
    pred[:, 1] = True      # thicker membrane, same two regions
    v_rand, v_info = metrics.rand_and_info(pred, TRUTH)
    assert (v_rand, v_info) == (pytest.approx(1.0), pytest.approx(1.0))


def test_regions_use_four_connectivity():
    # A diagonal 1-pixel membrane separates the corners only under 4-connectivity.
    membrane = np.eye(3, dtype=bool)[::-1]
    labels = metrics.regions(membrane)
    assert labels.max() == 2


def test_mean_scores_average_each_field():
    a = metrics.Scores(0.1, 0.5, 0.9, 0.8)
    b = metrics.Scores(0.3, 0.7, 0.7, 0.6)
    m = metrics.mean_scores([a, b])
    assert (m.pixel_error, m.membrane_dice, m.v_rand, m.v_info) == pytest.approx((0.2, 0.6, 0.8, 0.7))


def test_adapted_rand_counts_thick_membrane_as_singletons():
    # Truth: two 6-pixel regions either side of column 2. The proposal's membrane also covers
    # columns 1 and 3: ISBI's border thinning hands those pixels back to the regions (perfect),
    # the adapted Rand of SNEMI3D/CREMI counts each as a segment of its own. Over the 12
    # foreground pixels: sum p^2 = 2 (3/12)^2 + 6 (1/12)^2 = 1/6, sum t^2 = 1/2, sum s^2 = 1/6,
    # so V_rand = (1/6) / (1/4 + 1/12) = 1/2.
    pred = membrane_from([".###.", ".###.", ".###."])
    assert metrics.rand_and_info(pred, TRUTH, "isbi") == pytest.approx((1.0, 1.0))
    v_rand, v_info = metrics.rand_and_info(pred, TRUTH, "adapted")
    h_t, h_s = np.log(2), 0.5 * np.log(4) + 0.5 * np.log(12)
    assert v_rand == pytest.approx(0.5)
    assert v_info == pytest.approx(h_t / (0.5 * h_t + 0.5 * h_s))
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.rand_and_info(pred, TRUTH, "cremi")


def test_truth_regions_can_come_from_instance_ids():
    # Ids 1 and 2 are two neurons; a membrane mask with only row 2 as membrane would make
    # them one region, so the proposal that separates them would look like a split.
    truth = membrane_from(["....", "....", "####", "...."])
    ids = np.array([[1, 1, 0, 2], [1, 1, 0, 2], [0, 0, 0, 0], [3, 3, 3, 3]])
    pred = membrane_from(["..#.", "..#.", "####", "...."])
    assert metrics.score_slice(pred, truth).v_rand < 1.0
    assert metrics.score_slice(pred, truth, ids, "adapted").v_rand == pytest.approx(1.0)


def test_object_scores_count_a_proposal_gap_as_singletons():
    truth = np.array([[[1, 1, 1, 1]]])
    gap = np.array([[[5, 0, 0, 5]]])
    scores = metrics.object_scores(truth, gap)
    # four voxels of one body: a 2-voxel segment and two singletons; H(S|T) = H(S) = 1.5 bits
    assert scores.vi_split == pytest.approx(1.5) and scores.vi_merge == 0.0
    assert scores.arand_f == pytest.approx((0.25 + 0.0625 * 2) / (0.5 * 1 + 0.5 * (0.25 + 0.0625 * 2)))


def test_challenge_scores_take_the_best_threshold_of_the_sweep(isbi):
    """The leaderboard's figures: for a binary proposal every threshold below 1 gives the same
    regions; for a real probability map the best threshold's mean equals a direct computation."""
    from PIL import Image

    from emseg_lite.runtime.pipelines.segmenter import Segmenter

    segmenter = Segmenter.load("int8", threads=2)
    names = [25, 26]
    truths = np.stack([metrics.regions(np.asarray(Image.open(isbi / "train" / "labels" / f"{n}.png")) == 0)
                       for n in names])
    perfect = metrics.challenge_scores((truths == 0).astype(np.float32), truths)
    assert (perfect.v_rand, perfect.v_info) == (1.0, 1.0)
    maps = np.stack([segmenter.probabilities(np.asarray(Image.open(isbi / "train" / "images" / f"{n}.png")))
                     for n in names])
    best = metrics.challenge_scores(maps, truths)
    direct = np.mean([metrics.rand_and_info_of_labels(t, metrics.regions(1 - m <= best.v_rand_threshold), "isbi")
                      for m, t in zip(maps, truths)], axis=0)
    assert best.v_rand == pytest.approx(direct[0]) and 0.85 < best.v_rand <= 1.0
    assert best.v_rand_threshold in metrics.CHALLENGE_THRESHOLDS and 0.8 < best.v_info <= 1.0
