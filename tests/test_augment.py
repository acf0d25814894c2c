"""Augmentation keeps image and label aligned, covers the dihedral group, and is seeded."""
import numpy as np

from emseg_lite.runtime.core.card import Normalization
from emseg_lite.runtime.pipelines.datasets import load_labeled, locate
from emseg_lite.train import augment
from emseg_lite.train.config import AugmentConfig
from emseg_lite.train.data import normalized

GEOMETRY_ONLY = AugmentConfig(brightness=0, contrast=0, gamma=0, noise_sigma=0)


def test_geometry_moves_image_and_label_together(isbi):
    volume = load_labeled(*locate(isbi)).select([0, 1])
    membrane = volume.membrane.astype(np.float32)
    # Use the label itself as the image: after any warp the two must still coincide.
    rng = np.random.default_rng(3)
    for i in range(20):
        img, lab = augment.sample(membrane[i % 2], membrane[i % 2], rng, 128, GEOMETRY_ONLY)
        agree = np.mean((img > 0.5) == (lab > 0.5))
        assert agree > 0.999, f"sample {i}: image and label disagree on {100 * (1 - agree):.2f}% of pixels"


def test_elastic_deformation_really_deforms(isbi):
    volume = load_labeled(*locate(isbi)).select([0])
    image = normalized(volume.images, Normalization())[0]
    config = AugmentConfig(brightness=0, contrast=0, gamma=0, noise_sigma=0, elastic_sigma=10.0)
    rng = np.random.default_rng(0)
    field = augment.elastic_field(rng, 128, 3, 10.0)
    assert field.shape == (2, 128, 128) and 3 < np.abs(field).max() < 60
    img, _ = augment.sample(image, volume.membrane[0].astype(np.float32), rng, 128, config)
    assert img.shape == (128, 128) and img.dtype == np.float32


def test_dihedral_gives_eight_distinct_transforms():
    a = np.arange(16, dtype=np.float32).reshape(4, 4)
    outs = {augment.dihedral(a, a, k)[0].tobytes() for k in range(8)}
    assert len(outs) == 8


def test_intensity_stays_in_range_and_leaves_label_alone():
    rng = np.random.default_rng(1)
    image = rng.random((64, 64)).astype(np.float32)
    out = augment.intensity(image, rng, AugmentConfig())
    assert out.min() >= 0 and out.max() <= 1 and not np.allclose(out, image)


def test_batches_are_reproducible_from_the_seed(isbi):
    volume = load_labeled(*locate(isbi)).select([0, 1, 2])
    images = normalized(volume.images, Normalization())
    labels = volume.membrane.astype(np.float32)
    first = next(augment.batches(images, labels, 64, 2, AugmentConfig(), seed=7))
    again = next(augment.batches(images, labels, 64, 2, AugmentConfig(), seed=7))
    other = next(augment.batches(images, labels, 64, 2, AugmentConfig(), seed=8))
    np.testing.assert_array_equal(first[0], again[0])
    assert first[0].shape == (2, 64, 64, 1) and first[1].shape == (2, 64, 64, 1)
    assert not np.array_equal(first[0], other[0])


def test_fast_elastic_field_equals_spline_zoom():
    from scipy import ndimage as ndi

    field = augment.elastic_field(np.random.default_rng(5), 200, 3, 10.0)
    coarse = np.random.default_rng(5).normal(0.0, 10.0, size=(2, 3, 3))
    expected = np.stack([ndi.zoom(c, 200 / 3, order=3, mode="nearest")[:200, :200] for c in coarse])
    np.testing.assert_allclose(field, expected, atol=1e-4)
