"""`emseg-lite neurons` (and `volume --neurons`) on fib-gala's real FIB-SEM test volume.

With the embedded ISBI model (zero-shot on FIB-SEM; the fine-tuned figures are
`make objects-study`'s): neurons cover every voxel and score far better than the
fragments they are made of; another threshold rewrites only the neurons, from the
stored merge history; a run killed with SIGKILL and started again writes the arrays
an uninterrupted one writes; object blocks give nearly what one block gives; bad
input is one line and exit code 2.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from emseg_lite.runtime.core.card import ModelCard, card_path_for
from emseg_lite.runtime.engine.registry import resolve

CLI = str(Path(sys.executable).parent / "emseg-lite")


def run(*args):
    return subprocess.run([CLI, *map(str, args)], capture_output=True, text=True)


def labels(path: Path) -> dict[str, np.ndarray]:
    group = zarr.open_group(str(path), mode="r")
    return {name: np.asarray(group[f"labels/{name}/0"]) for name in ("fragments", "neurons")}


def scores(path: Path, truth: Path) -> dict:
    result = run("evaluate", "--objects", path, "--labels", truth, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def fib(data_root) -> Path:
    return data_root / "fib-gala"


@pytest.fixture(scope="module")
def segmented(fib, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("neurons") / "test.ome.zarr"
    result = run("volume", fib / "test-volume.tif", "-o", out, "--neurons", "--voxels", "isotropic", "--workers", "2")
    assert result.returncode == 0, result.stderr
    threshold = ModelCard.load(card_path_for(resolve())).objects.threshold
    assert f"neurons at threshold {threshold} (isotropic: xy, xz and yz planes)" in result.stderr
    return out


def test_neurons_cover_every_voxel_and_beat_their_fragments(segmented, fib):
    arrays = labels(segmented)
    assert (arrays["neurons"] > 0).all() and (arrays["fragments"] > 0).all()
    assert 100 < len(np.unique(arrays["neurons"])) < len(np.unique(arrays["fragments"])) / 4
    figures = scores(segmented, fib / "test-labels.tif")
    neurons, fragments = figures["neurons"], figures["fragments"]
    assert neurons["vi"] < fragments["vi"] - 1.0 and neurons["arand_f"] > fragments["arand_f"] + 0.3
    assert neurons["vi"] < 1.4 and neurons["arand_f"] > 0.85  # zero-shot; measured 1.15 and 0.90


def test_another_threshold_rewrites_only_the_neurons(segmented, fib, tmp_path):
    out = tmp_path / "copy.ome.zarr"
    shutil.copytree(segmented, out)
    before = labels(out)
    lower = run("neurons", out, "--voxels", "isotropic", "--threshold", "0.3", "--workers", "1")
    assert lower.returncode == 0, lower.stderr
    assert "network on xz and yz planes" in lower.stderr and "0.0 s network" in lower.stderr  # nothing recomputed
    after = labels(out)
    np.testing.assert_array_equal(after["fragments"], before["fragments"])
    assert len(np.unique(after["neurons"])) > len(np.unique(before["neurons"]))
    back = run("neurons", out, "--voxels", "isotropic", "--workers", "1")
    assert back.returncode == 0, back.stderr
    np.testing.assert_array_equal(labels(out)["neurons"], before["neurons"])


def test_object_blocks_give_nearly_one_block(segmented, fib, tmp_path):
    """Two object blocks of 100 x 100 px: the merges across their face are scored without
    waterz's re-scoring, and cost little (blocks of cells' size, 50 px, cost VI ~0.5)."""
    out = tmp_path / "blocks.ome.zarr"
    shutil.copytree(segmented, out)
    result = run("neurons", out, "--voxels", "isotropic", "--block", "100", "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert zarr.open_group(str(out), mode="r")["objects/fragmented"].shape == (1, 2)
    whole, blocks = (scores(path, fib / "test-labels.tif")["neurons"] for path in (segmented, out))
    assert blocks["vi"] < whole["vi"] + 0.1 and blocks["arand_f"] > whole["arand_f"] - 0.03


def test_kill_minus_nine_then_again_gives_identical_objects(segmented, tmp_path):
    reference, killed = tmp_path / "reference.ome.zarr", tmp_path / "killed.ome.zarr"
    for path in (reference, killed):
        shutil.copytree(segmented, path)
    args = ["--voxels", "isotropic", "--block", "64", "--workers", "1"]
    assert run("neurons", reference, *args).returncode == 0
    process = subprocess.Popen([CLI, "neurons", str(killed), *args], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    flags = killed / "objects" / "fragmented"
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if len([p for p in flags.rglob("*") if p.is_file() and not p.name.startswith(".")]) >= 2:
            break
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done = np.asarray(zarr.open_group(str(killed), mode="r")["objects/fragmented"])
    assert 0 < done.sum() < done.size, "the kill must land mid-run"
    again = run("neurons", killed, *args)
    assert again.returncode == 0, again.stderr
    for name, values in labels(killed).items():
        np.testing.assert_array_equal(values, labels(reference)[name], err_msg=name)


def test_unknown_section_spacing_is_taken_for_serial_sections(segmented, tmp_path):
    out = tmp_path / "auto.ome.zarr"
    shutil.copytree(segmented, out)
    result = run("neurons", out, "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert "section spacing unknown: taken as serial sections (xy only, pooled 8 x 8)" in result.stderr
    assert "(xy sections, graph on 8 x 8 pixels)" in result.stderr


def test_one_section_and_blank_sections_make_objects(isbi, tmp_path):
    """A single section, and sections with no membrane (blank) or all membrane (black): objects
    still cover every voxel, one each for the blank and the black sections."""
    from PIL import Image

    section = np.asarray(Image.open(isbi / "test" / "0.png"))
    for name, pages in (("one", section[np.newaxis]),
                        ("blank", np.stack([section, np.full_like(section, 255), np.zeros_like(section)]))):
        stack = tmp_path / f"{name}.tif"
        tifffile.imwrite(stack, pages, imagej=True, metadata={"axes": "ZYX"})
        out = tmp_path / f"{name}.ome.zarr"
        result = run("volume", stack, "-o", out, "--neurons", "--workers", "1")
        assert result.returncode == 0, result.stderr
        neurons = labels(out)["neurons"]
        assert (neurons > 0).all() and len(np.unique(neurons[0])) > 50


def test_objects_of_another_store_layout_are_made_again(isbi, tmp_path):
    """An output whose objects an older emseg-lite wrote (other arrays, the same parameters)
    gets them made again rather than read in the wrong layout."""
    from PIL import Image

    stack = tmp_path / "two.tif"
    tifffile.imwrite(stack, np.stack([np.asarray(Image.open(isbi / "test" / f"{z}.png")) for z in range(2)]),
                     imagej=True, metadata={"axes": "ZYX"})
    out = tmp_path / "two.ome.zarr"
    assert run("volume", stack, "-o", out, "--neurons", "--workers", "1").returncode == 0
    before = labels(out)
    group = zarr.open_group(str(out), mode="r+")
    attrs = group.attrs["emseg-lite"]
    group.attrs["emseg-lite"] = {**attrs, "objects": {k: v for k, v in attrs["objects"].items() if k != "layout"}}
    group["labels/fragments/0"][...] = 0  # what this version would misread
    again = run("neurons", out, "--workers", "1")
    assert again.returncode == 0, again.stderr
    for name, values in labels(out).items():
        np.testing.assert_array_equal(values, before[name], err_msg=name)


def test_bad_inputs_are_one_line_and_exit_2(segmented, fib, tmp_path, isbi):
    plain = tmp_path / "plain.ome.zarr"
    made = run("volume", isbi / "test" / "0.png", "-o", plain, "--workers", "1")
    assert made.returncode == 0, made.stderr
    cases = [
        (("neurons", plain), "has no probabilities"),
        (("neurons", tmp_path), "not an output of emseg-lite volume"),
        (("evaluate", "--objects", segmented, "--labels", isbi / "train" / "labels" / "0.png"), "the labels are"),
        (("evaluate", "--objects", segmented, "--images", fib / "test-volume.tif", "--labels",
          fib / "test-labels.tif"), "not both"),
    ]
    for args, problem in cases:
        result = run(*args)
        assert result.returncode == 2, (args, result.stderr)
        lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and problem in lines[0], result.stderr
        assert "Traceback" not in result.stderr


def test_ids_widen_to_64_bits_when_a_volume_needs_it():
    from emseg_lite.runtime.formats.objectstore import object_dtype

    assert object_dtype((100, 4096, 4096), 512) == np.uint32
    assert object_dtype((2000, 20000, 20000), 512) == np.uint64


def test_working_pixel_is_the_largest_power_of_two_within_the_section_spacing():
    from emseg_lite.runtime.post.objects import xy_pool

    assert xy_pool(50.0, 4.0, False, 8) == 8  # ISBI 2012: 32 nm, not 64
    assert xy_pool(45.0, 4.6, False, 8) == 8  # vnc-stack2
    assert xy_pool(20.0, 8.0, False, 8) == 2
    assert xy_pool(4.0, 4.0, False, 8) == 1
    assert xy_pool(10.0, 10.0, True, 8) == 1  # FIB-SEM: the sections' own pixel
    assert xy_pool(None, 4.0, False, 8) == 8  # unknown: the card's serial_pool


def test_pooled_fragments_keep_a_one_pixel_membrane_closed_and_neurons_part_within_its_cells():
    from emseg_lite.runtime.post.objects import fragments_and_merges, pooled, unpooled

    probability = np.full((3, 61, 70), 0.02, np.float32)
    probability[:, :, 29] = 1.0  # one pixel wide, inside the working pixels of columns 24-31
    working = pooled(probability, 8)
    assert working.shape == (3, 8, 9) and (working[:, :, 3] == 1.0).all() and (working[:, :, 4] < 0.1).all()
    fragments, history = fragments_and_merges(working, 100, "quantile-75")
    cells = history.merge(0.5).apply(fragments, 100, int(fragments.max()) - 100, renumber=True)
    assert (fragments > 100).all() and len(np.unique(cells[:, :, :3])) == len(np.unique(cells[:, :, 4:])) == 1
    blocky = unpooled(cells, 8, 61, 70, np.uint32)
    neurons = unpooled(cells, 8, 61, 70, np.uint32, working)
    assert blocky.shape == neurons.shape == probability.shape and (neurons > 0).all()
    left, right = np.unique(neurons[:, :, :28]), np.unique(neurons[:, :, 28:])  # each pixel to its nearer side
    assert len(left) == 1 and len(right) == 1 and left[0] != right[0]
    assert (blocky[:, :, 24:32] == blocky[:, :, 24:25]).all()  # without: the cell's own id throughout
    clear = np.ones(70, bool)
    clear[24:32] = False
    np.testing.assert_array_equal(neurons[:, :, clear], blocky[:, :, clear])  # clear cells keep their ids
