"""The numpy region operations against scipy.ndimage, their reference (scipy is a test dependency only),
and the compiled ones against the numpy ones."""

import numpy as np
import pytest
from conftest import missing
from scipy import ndimage as ndi

from emseg_lite.runtime.post import regions
from emseg_lite.runtime.post.regions import fill_nearest, gaussian_blur, label

FOUR_CONNECTED = ndi.generate_binary_structure(2, 1)


def random_masks(count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        height, width = rng.integers(1, 48, size=2)
        yield rng.random((height, width)) < rng.random()


def test_label_equals_scipy_numbering_included():
    for mask in random_masks(300):
        ours, count = label(mask)
        reference, reference_count = ndi.label(mask, structure=FOUR_CONNECTED)
        assert count == reference_count
        np.testing.assert_array_equal(ours, reference)
        assert ours.dtype == np.int32


def test_label_joins_a_serpentine_into_one_component():
    # Rows linked at alternating ends: a long chain of runs, one hook per round for naive union-find.
    serpentine = np.zeros((61, 30), dtype=bool)
    serpentine[::2] = True
    serpentine[1::4, -1] = True
    serpentine[3::4, 0] = True
    labels, count = label(serpentine)
    assert count == 1
    np.testing.assert_array_equal(labels, serpentine.astype(np.int32))


def test_label_of_empty_and_full_masks():
    assert label(np.zeros((0, 5), dtype=bool))[1] == 0
    assert label(np.zeros((3, 4), dtype=bool))[1] == 0
    labels, count = label(np.ones((3, 4), dtype=bool))
    assert count == 1 and (labels == 1).all()


def test_fill_nearest_gives_every_pixel_a_label_at_the_taxicab_distance():
    for mask in random_masks(150, seed=1):
        seeds, count = ndi.label(mask & (np.random.default_rng(2).random(mask.shape) < 0.2),
                                 structure=FOUR_CONNECTED)
        filled = fill_nearest(seeds)
        if count == 0:
            assert not filled.any()
            continue
        np.testing.assert_array_equal(filled[seeds > 0], seeds[seeds > 0])
        nearest_any = ndi.distance_transform_cdt(seeds == 0, metric="taxicab")
        for region in np.unique(filled):
            nearest_own = ndi.distance_transform_cdt(seeds != region, metric="taxicab")
            np.testing.assert_array_equal(nearest_own[filled == region], nearest_any[filled == region])


def test_fill_nearest_gives_a_tie_to_the_region_above_or_left():
    labels = np.zeros((5, 5), dtype=np.int32)
    labels[0], labels[4] = 1, 2
    assert fill_nearest(labels)[:, 0].tolist() == [1, 1, 1, 2, 2]
    assert fill_nearest(labels.T)[0].tolist() == [1, 1, 1, 2, 2]


def test_fill_nearest_leaves_the_input_alone():
    labels = np.zeros((4, 4), dtype=np.int32)
    labels[1, 1] = 7
    assert (fill_nearest(labels) == 7).all()
    assert labels.sum() == 7


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0, 3.3])
def test_gaussian_blur_matches_scipy(sigma):
    rng = np.random.default_rng(3)
    for shape in [(1, 1), (3, 17), (64, 48)]:
        image = rng.random(shape).astype(np.float32)
        np.testing.assert_allclose(gaussian_blur(image, sigma), ndi.gaussian_filter(image, sigma), atol=1e-5)


# The compiled kernels (runtime/post/_regions.c) must give exactly what the numpy versions give.

def compiled():
    from emseg_lite.runtime.post import native

    if not native.available():
        missing("compiled region operations not built (no C compiler at install?)")
    return native


def test_compiled_operations_equal_numpy_on_random_images():
    native = compiled()
    rng = np.random.default_rng(5)
    for mask in random_masks(400, seed=4):
        ours, count = regions.label(mask)
        theirs, their_count = native.label(mask)
        assert count == their_count
        np.testing.assert_array_equal(ours, theirs)
        seeds = np.where(rng.random(mask.shape) < 0.2, ours, 0).astype(np.int32)
        np.testing.assert_array_equal(regions.fill_nearest(seeds), native.fill_nearest(seeds))
        relief = rng.random(mask.shape).astype(np.float32)
        for sigma in (0.5, 1.0, 2.5):
            np.testing.assert_array_equal(regions.gaussian_blur(relief, sigma), native.gaussian_blur(relief, sigma))
        a, b = seeds.copy(), seeds.copy()
        regions.flood(a, relief, 0.4)
        native.flood(b, relief, 0.4)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(regions.label_borders(a), native.label_borders(a))
        for levels in ([0.2, 0.5], [0.3, 0.6, np.inf]):  # the levels hand over their unlabelled runs
            a, b = seeds.copy(), seeds.copy()
            regions.flood_levels(a, relief, levels)
            native.flood_levels(b, relief, levels)
            np.testing.assert_array_equal(a, b)


def test_compiled_watershed_equals_numpy_on_real_maps(vnc_tiff):
    from emseg_lite.runtime.formats.reader import read_slices
    from emseg_lite.runtime.pipelines.segmenter import Segmenter
    from emseg_lite.runtime.post.postprocess import watershed_boundaries

    native = compiled()
    segmenter = Segmenter.load("int8", threads=2)
    probability = segmenter.probabilities(read_slices(vnc_tiff).pages[0])
    post = segmenter.card.postprocessing
    for crop in (np.s_[:, :], np.s_[100:613, 7:1000]):
        np.testing.assert_array_equal(watershed_boundaries(probability[crop], post, regions),
                                      watershed_boundaries(probability[crop], post, native))
