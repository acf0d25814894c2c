"""The ISBI and object metrics against an independent reference, scikit-image, on real labels.

scikit-image comes with the full development install (the ``test`` extra); the
oldest-LiteRT environment checks the interpreter and does not carry it.
"""
import numpy as np
import pytest

from emseg_lite.runtime.post import metrics


@pytest.fixture(scope="module")
def isbi_truth_and_proposal(isbi):
    """ISBI train section 25: its truth regions, and the embedded model's proposal thinned onto them."""
    from PIL import Image

    from emseg_lite.runtime.pipelines.segmenter import Segmenter

    image = np.asarray(Image.open(isbi / "train" / "images" / "25.png"))
    truth = metrics.regions(np.asarray(Image.open(isbi / "train" / "labels" / "25.png")) == 0)
    pred = Segmenter.load("int8", threads=2).segment(image) == 0
    foreground = truth > 0
    return truth[foreground], metrics.thin_borders(metrics.regions(pred), foreground)[foreground]


def test_v_rand_and_v_info_equal_scikit_image_on_real_regions(isbi_truth_and_proposal):
    from skimage.measure import shannon_entropy
    from skimage.metrics import adapted_rand_error, variation_of_information

    truth, proposal = isbi_truth_and_proposal
    assert (proposal > 0).all() and len(np.unique(proposal)) > 50
    v_rand, v_info = metrics.rand_and_info_of_labels(truth, proposal, "adapted")
    # scikit-image counts pairs of distinct pixels (n(n-1)), Arganda-Carreras et al. all n^2 pairs: O(1/n) apart
    assert v_rand == pytest.approx(1 - adapted_rand_error(truth, proposal)[0], abs=10 / truth.size)
    proposal_given_truth, truth_given_proposal = variation_of_information(truth, proposal)
    h_truth, h_proposal = shannon_entropy(truth, base=2), shannon_entropy(proposal, base=2)
    assert proposal_given_truth > 0.05 and truth_given_proposal > 0.05
    assert v_info == pytest.approx((h_truth - truth_given_proposal) / (0.5 * (h_truth + h_proposal)), abs=1e-9)


def test_object_scores_equal_scikit_image_on_real_3d_labels(data_root):
    """fib-gala's test labels against a proposal made from them with real merges (pairs of
    bodies) and real splits (every body cut at section 25)."""
    import tifffile
    from skimage.metrics import adapted_rand_error, variation_of_information

    truth = tifffile.imread(data_root / "fib-gala" / "test-labels.tif").astype(np.int64)
    proposal = truth // 2 + 1
    proposal[25:] += int(proposal.max())
    scores = metrics.object_scores(truth, proposal)
    foreground = truth > 0
    split, merge = variation_of_information(truth[foreground], proposal[foreground])
    assert scores.vi_split == pytest.approx(split, abs=1e-9) and scores.vi_merge == pytest.approx(merge, abs=1e-9)
    assert 0.5 < scores.vi_split and 0.3 < scores.vi_merge
    reference = 1 - adapted_rand_error(truth[foreground], proposal[foreground])[0]
    assert scores.arand_f == pytest.approx(reference, abs=10 / foreground.sum())  # pairs with themselves, or not
    assert metrics.object_scores(truth, truth) == metrics.ObjectScores(0.0, 0.0, 1.0)
