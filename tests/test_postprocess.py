"""Post-processing: thresholding, and a watershed that closes 1-pixel borders on the ridge."""
import numpy as np

from emseg_lite.runtime.core.card import PostProcessing
from emseg_lite.runtime.post.metrics import regions
from emseg_lite.runtime.post.postprocess import membrane_mask
from emseg_lite.runtime.post.regions import label_borders

SHARP = PostProcessing(method="watershed", seed_threshold=0.05, min_seed_area=1, smoothing_sigma=0.0, levels=4)


def test_threshold_marks_membrane_above_it():
    p = np.array([[0.1, 0.4, 0.6, 0.9]])
    assert membrane_mask(p, PostProcessing(method="none", threshold=0.5)).tolist() == [[False, False, True, True]]


def test_border_sits_on_the_middle_of_a_saturated_band():
    # Two cells separated by a 7-pixel band where the network says 1.0 everywhere.
    row = np.array([0, 0, 0, 0.6, 1, 1, 1, 1, 1, 1, 1, 0.6, 0, 0, 0], dtype=np.float32)
    mask = membrane_mask(np.tile(row, (5, 1)), SHARP)
    assert np.nonzero(mask[2])[0].tolist() == [7]


def test_border_follows_the_ridge_not_the_first_basin():
    # An asymmetric ridge: the border must be at the crest (index 5), not pushed to a side.
    row = np.array([0, 0, 0.2, 0.5, 0.8, 1.0, 0.7, 0.4, 0.3, 0, 0, 0, 0], dtype=np.float32)
    mask = membrane_mask(np.tile(row, (3, 1)), SHARP)
    assert abs(int(np.nonzero(mask[1])[0][0]) - 5) <= 1


def test_faint_gap_in_a_membrane_does_not_merge_cells():
    p = np.zeros((40, 40), np.float32)
    p[:, 19:21] = 1.0
    p[18:22, 19:21] = 0.3            # a gap the network was unsure about
    plain = membrane_mask(p, PostProcessing(method="none", threshold=0.5))
    flooded = membrane_mask(p, SHARP)
    assert regions(plain).max() == 1          # thresholding merges the two cells
    assert regions(flooded).max() == 2        # seeds below 0.05 stay apart; the gap is closed


def test_watershed_borders_are_closed_and_one_pixel_thin():
    # A noisy honeycomb: thick membranes every 16 pixels, a little noise everywhere.
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:96, :96]
    p = (((yy % 16) < 4) | (((xx + 8 * (yy // 16)) % 16) < 4)).astype(np.float32)
    p = np.clip(p + rng.normal(0, 0.1, p.shape), 0, 1).astype(np.float32)
    mask = membrane_mask(p, PostProcessing(method="watershed", seed_threshold=0.2, smoothing_sigma=1.0))
    labels = regions(mask)
    assert labels.max() >= 30
    # No two different regions touch 4-connectedly: every border is closed.
    assert not np.any((labels[:, :-1] > 0) & (labels[:, 1:] > 0) & (labels[:, :-1] != labels[:, 1:]))
    assert not np.any((labels[:-1] > 0) & (labels[1:] > 0) & (labels[:-1] != labels[1:]))
    # One pixel thin: 4-pixel membranes every 16 pixels (~44 % of pixels) become ~2 / 16.
    assert p.round().mean() > 0.4 and mask.mean() < 0.15


def test_no_seed_falls_back_to_threshold():
    p = np.full((8, 8), 0.9, np.float32)
    assert membrane_mask(p, SHARP).all()


def test_label_borders_marks_one_side_of_each_change():
    labels = np.array([[1, 1, 2, 2]])
    assert label_borders(labels).tolist() == [[False, True, False, False]]
