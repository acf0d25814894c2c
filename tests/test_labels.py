"""Label images as labs have them: membrane masks and instance ids, and every way they can be wrong."""
import numpy as np
import pytest
import tifffile

from emseg_lite.runtime.core.errors import InputError
from emseg_lite.runtime.pipelines.datasets import load_labeled
from emseg_lite.runtime.post import labels
from emseg_lite.runtime.post.labels import LabelSpec

IDS = np.array([
    [1, 1, 0, 2, 2],
    [1, 1, 0, 2, 2],
    [3, 3, 3, 2, 2],
    [3, 3, 3, 2, 2],
], dtype=np.uint16)


def test_instance_boundaries_are_label_zero_plus_one_pixel_per_label_change():
    boundary = labels.instance_boundaries(IDS)
    expected = np.array([
        [0, 0, 1, 0, 0],
        [1, 1, 1, 0, 0],   # 1 above 3: the upper pixel of each pair
        [0, 0, 1, 0, 0],   # 3 left of 2: the left pixel
        [0, 0, 1, 0, 0],
    ], dtype=bool)
    np.testing.assert_array_equal(boundary, expected)


def test_boundary_width_widens_on_both_sides():
    ids = np.ones((7, 9), np.uint16)
    ids[:, 5:] = 2
    one = labels.membrane_target(ids, "instances", LabelSpec(boundary_width=1))
    three = labels.membrane_target(ids, "instances", LabelSpec(boundary_width=3))
    assert one.sum(axis=1).tolist() == [1] * 7 and np.flatnonzero(one[0]).tolist() == [4]
    assert np.flatnonzero(three[0]).tolist() == [3, 4, 5]
    with pytest.raises(ValueError, match="odd"):
        LabelSpec(boundary_width=2)


def test_truth_regions_are_the_connected_pieces_of_each_id():
    ids = np.array([
        [5, 5, 0, 5],
        [5, 5, 0, 5],
        [7, 7, 7, 7],
    ], dtype=np.uint32)
    regions = labels.same_id_components(ids)
    assert regions[0, 0] == regions[1, 1] and regions[0, 3] == regions[1, 3] and regions[0, 0] != regions[0, 3]
    assert len(np.unique(regions[2])) == 1 and regions[2, 0] not in (regions[0, 0], regions[0, 3])
    assert (regions[:, 2][:2] == 0).all() and len(np.unique(regions)) == 4


def _write(tmp_path, images, label_stack, name="labels.tif"):
    tifffile.imwrite(tmp_path / "images.tif", images, imagej=True, metadata={"axes": "ZYX"})
    tifffile.imwrite(tmp_path / name, label_stack, photometric="minisblack")
    return tmp_path / "images.tif", tmp_path / name


def _instance_stack(dtype):
    stack = np.stack([np.kron(IDS, np.ones((8, 8), np.uint16))] * 3).astype(dtype)
    return np.random.default_rng(0).integers(0, 255, stack.shape, dtype=np.uint8), stack


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.int32])
def test_wide_integer_labels_are_recognised_as_instance_ids(tmp_path, dtype):
    images, stack = _instance_stack(dtype)
    volume = load_labeled(*_write(tmp_path, images, stack))
    assert volume.kind == "instances" and volume.metric == "adapted"
    np.testing.assert_array_equal(volume.membrane[0], labels.instance_boundaries(stack[0]))
    assert len(np.unique(volume.regions[0])) == 4  # three ids and the unscored boundary


def test_eight_bit_instance_ids_need_to_be_named(tmp_path):
    images, stack = _instance_stack(np.uint8)
    paths = _write(tmp_path, images, stack)
    with pytest.raises(InputError, match=r"labels.tif\[section 0\]: labels must be binary .*instance ids\?"):
        load_labeled(*paths)
    assert load_labeled(*paths, spec=LabelSpec(kind="instances")).kind == "instances"


def test_float_labels_are_refused(tmp_path):
    images, stack = _instance_stack(np.float32)
    with pytest.raises(InputError, match=r"labels.tif: labels are float32 values; expected integer"):
        load_labeled(*_write(tmp_path, images, stack))


def test_single_valued_labels_are_refused(tmp_path):
    images, stack = _instance_stack(np.uint16)
    with pytest.raises(InputError, match=r"labels.tif: labels hold a single value \(4\)"):
        load_labeled(*_write(tmp_path, images, np.full_like(stack, 4)))


def test_a_section_without_boundary_is_refused(tmp_path):
    images, stack = _instance_stack(np.uint16)
    stack[1] = 9
    with pytest.raises(InputError, match=r"labels.tif\[section 1\]: no membrane or boundary pixel"):
        load_labeled(*_write(tmp_path, images, stack))


def test_noise_is_not_taken_for_instance_ids(tmp_path):
    images, _ = _instance_stack(np.uint16)
    noise = np.random.default_rng(1).integers(0, 5000, images.shape).astype(np.uint16)
    with pytest.raises(InputError, match="neither like a binary mask nor like instance ids"):
        load_labeled(*_write(tmp_path, images, noise))


def test_membrane_value_absent_is_refused(tmp_path):
    images, _ = _instance_stack(np.uint16)
    mask = np.where(np.random.default_rng(2).random(images.shape) < 0.2, 255, 128).astype(np.uint8)
    with pytest.raises(InputError, match="no pixel has the membrane value 0"):
        load_labeled(*_write(tmp_path, images, mask))


def test_fib_gala_instance_labels(data_root):
    folder = data_root / "fib-gala"
    volume = load_labeled(folder / "train-volume.tif", folder / "train-labels.tif")
    assert volume.kind == "instances" and volume.images.shape == (50, 100, 200)
    raw = tifffile.imread(folder / "train-labels.tif")
    assert volume.membrane[raw == 0].all()
    fraction = volume.membrane.mean()
    assert 0.067 <= fraction < 0.10, f"label 0 is 6.7 % of pixels, plus touching ids: got {fraction:.3f}"
