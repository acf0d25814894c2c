"""Running the network at the model's pixel size: the resampling filter, its block-wise
agreement with one whole pass, and the CLI's ``--resample`` / ``--pixel-size-nm``."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from emseg_lite.runtime.core.card import PostProcessing
from emseg_lite.runtime.core.geometry import Region
from emseg_lite.runtime.engine.resample import Axis, Resampling
from emseg_lite.runtime.pipelines.datasets import load_labeled, locate
from emseg_lite.runtime.pipelines.segmenter import Segmenter

CLI = str(Path(sys.executable).parent / "emseg-lite")


def whole(resampling: Resampling, to_model: bool) -> tuple[Region, Region]:
    """(source, target) boxes of a whole section in one direction."""
    model = Region(0, 0, *resampling.model_shape)
    own = Region(0, 0, resampling.rows.size, resampling.cols.size)
    return (own, model) if to_model else (model, own)


def test_the_same_grid_is_not_resampled():
    assert Resampling.of(37, 53, 1.0) is None and Resampling.of(37, 53, 1.005) is None
    assert Resampling.of(37, 53, None) is None and Resampling.of(37, 53, 1.02).model_shape == (38, 54)


def test_enlarging_interpolates_linearly_between_pixel_centres():
    ramp = np.tile(np.arange(20, dtype=np.float32) * 3, (6, 1))
    resampling = Resampling.of(6, 20, 2.0)
    enlarged = resampling.to_model(ramp, *whole(resampling, True))
    assert enlarged.shape == (12, 40)
    # model pixel j sits at input position (j + 0.5) / 2 - 0.5; the edges repeat the edge pixel
    expected = np.clip((np.arange(40) + 0.5) / 2 - 0.5, 0, 19) * 3
    np.testing.assert_allclose(enlarged, np.tile(expected, (12, 1)), atol=1e-5)


def test_shrinking_averages_what_it_covers_instead_of_aliasing():
    checkerboard = (np.indices((64, 64)).sum(axis=0) % 2).astype(np.float32)
    resampling = Resampling.of(64, 64, 0.5)
    shrunk = resampling.to_model(checkerboard, *whole(resampling, True))
    assert shrunk.shape == (32, 32)
    np.testing.assert_allclose(shrunk[1:-1, 1:-1], 0.5, atol=1e-6)  # nearest or 2-tap linear would give 0s and 1s


def test_there_and_back_returns_a_smooth_image():
    y, x = np.mgrid[0:90, 0:70]
    image = (np.sin(x / 9.0) * np.cos(y / 7.0)).astype(np.float32)
    for scale in (0.6, 1.7, 2.5):
        resampling = Resampling.of(90, 70, scale)
        model = resampling.to_model(image, *whole(resampling, True))
        back = resampling.to_input(model, *whole(resampling, False))
        assert back.shape == image.shape
        assert np.abs(back - image)[5:-5, 5:-5].max() < 0.1, scale


def test_each_axis_reads_only_the_source_pixels_it_needs():
    axis = Axis(100, 250)
    start, stop = axis.source_span(40, 60, to_model=True)
    assert (start, stop) == (15, 25)  # model pixels 40..59 sit at input positions 15.7 .. 23.5
    index, weight = axis.taps(40, 60, to_model=True)
    assert np.allclose(weight.sum(axis=1), 1) and index[weight > 0].min() >= start


@pytest.fixture(scope="module")
def segmenter():
    return Segmenter.load("int8", threads=2)


@pytest.fixture(scope="module")
def isbi_slice(isbi):
    return load_labeled(*locate(isbi)).select([27]).images[0]


@pytest.mark.parametrize("scale", [0.55, 1.7])
def test_blocks_at_another_pixel_size_equal_one_whole_pass(segmenter, isbi_slice, scale):
    """Probabilities are computed block by block from each block's own window: with no
    post-processing context involved (threshold), the masks must be identical."""
    post = PostProcessing(method="none", threshold=0.5)
    whole_pass = segmenter.segment(isbi_slice, post, scale=scale)
    for block in (96, 160):
        np.testing.assert_array_equal(segmenter.segment(isbi_slice, post, block=block, scale=scale), whole_pass)
    probability = segmenter.probabilities(isbi_slice, scale=scale)
    assert probability.shape == isbi_slice.shape
    np.testing.assert_array_equal(whole_pass == segmenter.card.mask.membrane_value, probability > 0.5)


def _imagej(path: Path, image: np.ndarray, nm: float) -> None:
    tifffile.imwrite(path, image, imagej=True, resolution=(1 / nm, 1 / nm), metadata={"unit": "nm"})


def test_segment_resamples_by_the_files_pixel_size_and_keeps_its_grid(tmp_path, segmenter, isbi_slice):
    coarse = isbi_slice.reshape(256, 2, 256, 2).mean(axis=(1, 3)).astype(np.uint8)
    _imagej(tmp_path / "coarse.tif", coarse, 8.0)
    result = subprocess.run([CLI, "segment", str(tmp_path / "coarse.tif"), "--resample", "--overlay", "-q"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr  # resampled: nothing to warn about
    assert Image.open(tmp_path / "coarse_overlay.png").size == (256, 256)
    mask = np.asarray(Image.open(tmp_path / "coarse_mask.png"))
    np.testing.assert_array_equal(mask, segmenter.segment(coarse, scale=2.0))
    stated = subprocess.run([CLI, "segment", str(tmp_path / "coarse.tif"), "--resample", "--pixel-size-nm", "6",
                             "-o", str(tmp_path / "stated"), "-q"], capture_output=True, text=True)
    assert stated.returncode == 0, stated.stderr
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "stated" / "coarse_mask.png")),
                                  segmenter.segment(coarse, scale=1.5))


def test_resampling_an_input_of_unknown_pixel_size_is_refused_and_writes_nothing(tmp_path, isbi_slice):
    tifffile.imwrite(tmp_path / "plain.tif", isbi_slice)
    result = subprocess.run([CLI, "segment", str(tmp_path / "plain.tif"), "--resample"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'plain.tif'}: pixel size unknown (no ImageJ, OME or MRC metadata) to resample from: "
        "give --pixel-size-nm"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.tif"]


def test_isbi_sections_made_coarser_score_better_resampled_to_the_models_pixel_size(tmp_path, isbi):
    """ISBI's held-out sections 25-29 at 8 nm (2 x 2 averaged; membrane where half the
    pixels were): on their own grid the membranes are half as thick as the model learnt
    them. Measured (docs/pixel-size.md): V_rand 0.902 as they are, 0.935 resampled to the card's 4 nm."""
    import json

    volume = load_labeled(*locate(isbi)).select([25, 26, 27, 28, 29])
    coarse = volume.images.reshape(5, 256, 2, 256, 2).mean(axis=(2, 4)).round().astype(np.uint8)
    truth = volume.membrane.reshape(5, 256, 2, 256, 2).mean(axis=(2, 4)) >= 0.5
    tifffile.imwrite(tmp_path / "images.tif", coarse)
    tifffile.imwrite(tmp_path / "labels.tif", np.where(truth, 0, 255).astype(np.uint8))
    runs = {}
    for extra in ([], ["--resample", "--pixel-size-nm", "8"]):
        result = subprocess.run([CLI, "evaluate", "--images", str(tmp_path / "images.tif"), "--labels",
                                 str(tmp_path / "labels.tif"), "--json", *extra], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        runs[bool(extra)] = json.loads(result.stdout)["watershed"]["mean"]["v_rand"]
    assert runs[True] > runs[False] + 0.01, runs


def test_volume_and_watch_resample_as_segment_does(tmp_path, isbi):
    """One block-wise core: the three commands give the same masks at another pixel size."""
    import zarr

    volume = load_labeled(*locate(isbi)).select([25, 26, 27])
    coarse = volume.images.reshape(3, 256, 2, 256, 2).mean(axis=(2, 4)).round().astype(np.uint8)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    tifffile.imwrite(inbox / "coarse.tif", coarse, imagej=True, metadata={"axes": "ZYX"})
    resample = ["--resample", "--pixel-size-nm", "8"]
    for command in (["segment", str(inbox / "coarse.tif"), "-o", str(tmp_path / "seg"), "-q"],
                    ["volume", str(inbox / "coarse.tif"), "-o", str(tmp_path / "v.ome.zarr"), "--workers", "1", "-q"],
                    ["watch", str(inbox), "-o", str(tmp_path / "watch"), "--once", "--settle", "0", "-q"]):
        result = subprocess.run([CLI, *command, *resample], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    membrane = tifffile.imread(tmp_path / "seg" / "coarse_mask.tif") == 0
    assert membrane.shape == (3, 256, 256) and 0.03 < membrane.mean() < 0.3  # 1-px watershed borders
    written = np.asarray(zarr.open_group(str(tmp_path / "v.ome.zarr"), mode="r")["labels/membrane/0"])
    np.testing.assert_array_equal(written == 1, membrane)
    watched = np.stack([np.asarray(Image.open(tmp_path / "watch" / f"coarse_z{z:04d}_mask.png")) for z in range(3)])
    np.testing.assert_array_equal(watched == 0, membrane)
    resume = [CLI, "volume", str(inbox / "coarse.tif"), "-o", str(tmp_path / "v.ome.zarr"), "--resume", "-q"]
    assert subprocess.run([*resume, *resample], capture_output=True, text=True).returncode == 0
    unresampled = subprocess.run(resume, capture_output=True, text=True)  # one block either way: only the grid differs
    assert unresampled.returncode == 2 and "cannot resume: it was started with another model_grid" in unresampled.stderr


def test_a_model_without_a_pixel_size_cannot_resample(tmp_path, isbi_slice):
    import json
    import shutil

    from emseg_lite.runtime.engine import registry

    model = tmp_path / "m.tflite"
    shutil.copy(registry.embedded_models()["int8"], model)
    card = json.loads(registry.embedded_models()["int8"].with_suffix(".json").read_text())
    card["training"]["pixel_size_nm"] = None  # a fine-tune of sections whose files gave none
    model.with_suffix(".json").write_text(json.dumps(card))
    _imagej(tmp_path / "s.tif", isbi_slice, 8.0)
    result = subprocess.run([CLI, "segment", str(tmp_path / "s.tif"), "--model", str(model), "--resample"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 's.tif'}: the model's card states no pixel size to resample to"]
    assert not list(tmp_path.glob("s_mask*"))
