"""Labelled volumes: ISBI folder pairs, TIFF stacks, and every way the data can be wrong."""
import shutil

import numpy as np
import pytest
import tifffile
from PIL import Image

from emseg_lite.runtime.core.errors import InputError
from emseg_lite.runtime.pipelines.datasets import load_labeled, locate, parse_sections


def test_loads_isbi_folder_pair_in_numeric_order(isbi):
    volume = load_labeled(*locate(isbi))
    assert volume.images.shape == (30, 512, 512) and volume.membrane.shape == (30, 512, 512)
    assert volume.names[:3] == ["0.png", "1.png", "2.png"] and volume.names[-1] == "29.png"
    fraction = volume.membrane.mean()
    assert 0.18 < fraction < 0.26, f"ISBI is about 22 % membrane, got {fraction:.3f}"


def test_locate_accepts_data_root_or_isbi_folder(data_root, isbi):
    assert locate(data_root) == locate(isbi) == (isbi / "train" / "images", isbi / "train" / "labels")


def _stacks(isbi, tmp_path, dtype=np.uint8, byteorder="<", n=3):
    images = np.stack([np.array(Image.open(isbi / "train" / "images" / f"{i}.png")) for i in range(n)])
    labels = np.stack([np.array(Image.open(isbi / "train" / "labels" / f"{i}.png")) for i in range(n)])
    if dtype == np.uint16:
        images, labels = images.astype(np.uint16) * 257, (labels > 0).astype(np.uint16) * 65535
    kw = dict(byteorder=byteorder, imagej=True, metadata={"axes": "ZYX"})
    tifffile.imwrite(tmp_path / "train-volume.tif", images, **kw)
    tifffile.imwrite(tmp_path / "train-labels.tif", labels, **kw)
    return images, labels


@pytest.mark.parametrize("dtype,byteorder", [(np.uint8, "<"), (np.uint16, ">")])
def test_loads_tiff_stacks(isbi, tmp_path, dtype, byteorder):
    images, labels = _stacks(isbi, tmp_path, dtype, byteorder)
    volume = load_labeled(*locate(tmp_path))
    np.testing.assert_array_equal(volume.images, images)
    np.testing.assert_array_equal(volume.membrane, labels == 0)


def test_label_polarity_is_configurable(isbi, tmp_path):
    images, labels = _stacks(isbi, tmp_path)
    tifffile.imwrite(tmp_path / "train-labels.tif", 255 - labels, imagej=True, metadata={"axes": "ZYX"})
    volume = load_labeled(*locate(tmp_path), membrane_value=255)
    np.testing.assert_array_equal(volume.membrane, labels == 0)


def _folder_copy(isbi, tmp_path, n=3):
    for kind in ("images", "labels"):
        (tmp_path / kind).mkdir()
        for i in range(n):
            shutil.copy(isbi / "train" / kind / f"{i}.png", tmp_path / kind / f"{i}.png")
    return tmp_path / "images", tmp_path / "labels"


def test_missing_label_is_named(isbi, tmp_path):
    images, labels = _folder_copy(isbi, tmp_path)
    (labels / "1.png").unlink()
    with pytest.raises(InputError, match=r"images/1.png: has no label image"):
        load_labeled(images, labels)


def test_label_without_image_is_named(isbi, tmp_path):
    images, labels = _folder_copy(isbi, tmp_path)
    (images / "2.png").unlink()
    with pytest.raises(InputError, match=r"labels/2.png: has no raw image"):
        load_labeled(images, labels)


def test_shape_mismatch_is_named(isbi, tmp_path):
    images, labels = _folder_copy(isbi, tmp_path)
    Image.fromarray(np.zeros((100, 120), np.uint8)).save(labels / "0.png")
    with pytest.raises(InputError, match=r"labels/0.png: label is 120 x 100 but its image 0.png is 512 x 512"):
        load_labeled(images, labels)


def test_non_binary_labels_are_refused(isbi, tmp_path):
    images, labels = _folder_copy(isbi, tmp_path)
    label = np.array(Image.open(labels / "1.png"))
    label[:10, :10] = 17
    Image.fromarray(label).save(labels / "1.png")
    with pytest.raises(InputError, match=r"labels/1.png: labels must be binary .* found values 0, 17, 255"):
        load_labeled(images, labels)


def test_stack_count_mismatch_is_refused(isbi, tmp_path):
    images, labels = _stacks(isbi, tmp_path)
    tifffile.imwrite(tmp_path / "train-labels.tif", labels[:2], imagej=True, metadata={"axes": "ZYX"})
    with pytest.raises(InputError, match=r"train-labels.tif: has 2 sections but train-volume.tif has 3"):
        load_labeled(*locate(tmp_path))


def test_empty_image_folder_is_refused(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    with pytest.raises(InputError, match="no images"):
        load_labeled(tmp_path / "images", tmp_path / "labels")


def test_parse_sections():
    assert parse_sections("25-29") == [25, 26, 27, 28, 29]
    assert parse_sections("0,3,5-6") == [0, 3, 5, 6]
    with pytest.raises(ValueError):
        parse_sections("25..29")
