"""The napari plugin in a real viewer (napari + Qt, under Xvfb), driven as a user would.

Needs the full development install (the napari extra and pytest-qt). Each test
opens real ISBI sections, uses the dock widget the plugin contributes, and
compares what the layers hold with what ``emseg-lite segment`` writes for the
same input.

The module runs in a pytest process of its own (``make test`` does so): once
TensorFlow is imported, its bundled LLVM is loaded with global symbols, and
Mesa's software OpenGL (llvmpipe, what Xvfb gives napari) binds to it and
crashes on the first draw. The plugin keeps TensorFlow out of the viewer's
process for the same reason: fine-tuning runs in a child process.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from conftest import REPO, missing
from PIL import Image

try:
    import napari  # noqa: F401 -- the extra this module is about
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("napari is not installed (the napari extra)", allow_module_level=True)

CLI = str(Path(sys.executable).parent / "emseg-lite")
SCREENSHOT = REPO / "docs" / "images" / "napari-widget.png"
WAIT_MS = 120_000


@pytest.fixture(autouse=True)
def _without_tensorflow():
    if "tensorflow" in sys.modules:
        missing("TensorFlow is loaded in this process, and napari's software OpenGL crashes beside it: "
                "run `pytest tests/test_napari.py` on its own (make test does)")


@pytest.fixture
def viewer_and_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("emseg-lite", "Segment membranes")
    return viewer, widget


def _segmented(widget, qtbot, name: str):
    widget.segment()
    qtbot.waitUntil(lambda: widget.worker is not None and not widget.cancel.isEnabled(), timeout=WAIT_MS)
    assert "segmented" in widget.status.text(), widget.status.text()
    return widget.viewer.layers[f"{name} membrane"]


def _cli(section: Path, out: Path) -> tuple[np.ndarray, np.ndarray]:
    subprocess.run([CLI, "segment", str(section), "-o", str(out), "--probabilities", "-q"], check=True)
    mask = np.asarray(Image.open(out / f"{section.stem}_mask.png"))
    return mask, tifffile.imread(out / f"{section.stem}_prob.tif")


def test_the_plugin_is_found_by_napari():
    from npe2 import PluginManager

    manager = PluginManager.instance()
    manager.discover()
    manifest = manager.get_manifest("emseg-lite")
    assert [w.display_name for w in manifest.contributions.widgets] == ["Segment membranes"]
    assert "*.ome.zarr" in manifest.contributions.readers[0].filename_patterns


def test_segment_widget_gives_the_cli_masks_and_saves_a_screenshot(viewer_and_widget, qtbot, test_slice, tmp_path):
    viewer, widget = viewer_and_widget
    section = shutil.copy(test_slice, tmp_path / "section.png")
    viewer.open(section)
    membrane = _segmented(widget, qtbot, "section")
    mask, probability = _cli(Path(section), tmp_path / "cli")
    np.testing.assert_array_equal(membrane.data, (mask == 0).astype(np.uint8))
    np.testing.assert_array_equal(viewer.layers["section probability"].data, probability)
    regions = viewer.layers["section regions"].data
    assert regions.max() > 100  # the cells' regions, one id each, 0 on membrane
    np.testing.assert_array_equal(regions == 0, membrane.data == 1)

    shot = tmp_path / "widget.png"
    viewer.window._qt_window.resize(1500, 950)  # room for the section beside the dock widget
    viewer.reset_view()
    qtbot.wait(300)
    viewer.window.screenshot(str(shot), canvas_only=False)
    assert Image.open(shot).size[0] > 600
    if os.environ.get("EMSEG_SCREENSHOTS"):  # refresh the README's picture: EMSEG_SCREENSHOTS=1 pytest ...
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copy(shot, SCREENSHOT)


def test_painted_sections_are_on_disk_at_once_and_reload(viewer_and_widget, qtbot, isbi, tmp_path):
    viewer, widget = viewer_and_widget
    pages = np.stack([np.asarray(Image.open(isbi / "test" / f"{i}.png")) for i in range(3)])
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, pages, photometric="minisblack")
    viewer.open(stack)
    membrane = _segmented(widget, qtbot, "stack")
    viewer.dims.set_current_step(0, 2)  # the section shown is not the one painted
    membrane.brush_size = 15
    membrane.paint((1, 200, 200), 1)  # split: a membrane through a cell of section 1
    qtbot.waitUntil(lambda: widget.corrections.sections() == [1], timeout=5000)
    folder = widget.corrections.folder
    assert folder == tmp_path / "stack.emseg-corrections"
    np.testing.assert_array_equal(tifffile.imread(folder / "images" / "0001.tif"), pages[1])
    saved = tifffile.imread(folder / "labels" / "0001.tif")
    np.testing.assert_array_equal(saved == 0, membrane.data[1] == 1)
    assert saved[200, 200] == 0 and saved[190:211, 190:211].min() == 0

    from emseg_lite.runtime.pipelines.datasets import load_labeled

    reloaded = load_labeled(folder / "images", folder / "labels")  # what fine-tuning will read
    np.testing.assert_array_equal(reloaded.images[0], pages[1])


def test_region_edits_merge_and_split_and_the_membrane_follows(viewer_and_widget, qtbot, test_slice, tmp_path):
    """Fill one region with its neighbour's id: the membrane that parted only those two goes
    (in the layer and on disk); paint 0 across a cell: a membrane line appears there."""
    from emseg_lite.runtime.napari.corrections import BAND

    viewer, widget = viewer_and_widget
    viewer.open(shutil.copy(test_slice, tmp_path / "section.png"))
    membrane = _segmented(widget, qtbot, "section")
    regions = viewer.layers["section regions"]
    ids = regions.data.copy()
    a, b, between = _neighbours(ids)
    regions.fill(tuple(np.argwhere(ids == b)[0]), a)
    qtbot.waitUntil(lambda: widget.corrections.sections() == [0], timeout=5000)
    assert membrane.data[between] == 0 and regions.data[between] == a
    saved = tifffile.imread(widget.corrections.labels / "0000.tif")
    np.testing.assert_array_equal(saved == 0, membrane.data == 1)
    far = np.ones(ids.shape, dtype=bool)
    for y, x in np.argwhere((ids == b) | (ids == a)):
        far[max(0, y - BAND):y + BAND + 1, max(0, x - BAND):x + BAND + 1] = False
    np.testing.assert_array_equal(membrane.data[far], (ids == 0)[far])  # nothing else moved

    y, x = np.argwhere(ids == a)[len(np.argwhere(ids == a)) // 2]
    regions.brush_size = 3
    regions.paint((y, x), 0)
    qtbot.waitUntil(lambda: tifffile.imread(widget.corrections.labels / "0000.tif")[y, x] == 0, timeout=5000)
    assert membrane.data[y, x] == 1


def test_neurons_of_a_stack_and_a_merge_of_two_across_it(viewer_and_widget, qtbot, isbi, tmp_path):
    """3-D neurons of a stack (the objects step of volume --neurons, on one block); filling
    a neuron with its neighbour's id on one section merges them there, the membrane follows."""
    viewer, widget = viewer_and_widget
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, np.stack([np.asarray(Image.open(isbi / "test" / f"{i}.png")) for i in range(3)]),
                     photometric="minisblack")
    viewer.open(stack)
    widget.neurons.setChecked(True)
    membrane = _segmented(widget, qtbot, "stack")
    neurons = viewer.layers["stack neurons"]
    ids = neurons.data.copy()
    assert ids.shape == membrane.data.shape and ids.dtype == np.uint64
    np.testing.assert_array_equal(ids == 0, membrane.data == 1)  # 0 on membrane, an id on every cell pixel
    regions = viewer.layers["stack regions"].data
    assert 10 < len(np.unique(ids)) - 1 < len(np.unique(regions)) - 1  # sections' regions joined across z
    a, b, between = _neighbours(ids[1])
    viewer.dims.set_current_step(0, 1)
    neurons.fill((1, *np.argwhere(ids[1] == b)[0]), a)
    qtbot.waitUntil(lambda: widget.corrections.sections() == [1], timeout=5000)
    assert membrane.data[(1, *between)] == 0 and neurons.data[(1, *between)] == a
    saved = tifffile.imread(widget.corrections.labels / "0001.tif")
    np.testing.assert_array_equal(saved == 0, membrane.data[1] == 1)


def _neighbours(ids: np.ndarray) -> tuple[int, int, tuple[int, int]]:
    """Two big regions parted by a thin membrane, and a membrane pixel between them only."""
    sizes = np.bincount(ids.ravel())
    for y, x in np.argwhere(ids == 0)[::7]:
        row = ids[y, max(0, x - 4):x + 5]
        seen = set(np.unique(row[row != 0]))
        window = ids[max(0, y - 8):y + 9, max(0, x - 8):x + 9]
        if len(seen) == 2 and set(np.unique(window[window != 0])) == seen and min(sizes[list(seen)]) > 500:
            a, b = sorted(seen)
            return int(a), int(b), (int(y), int(x))
    raise AssertionError("no two regions parted by a thin membrane")


def test_reader_opens_segment_and_volume_outputs_at_their_scale(make_napari_viewer, isbi, tmp_path):
    viewer = make_napari_viewer()
    section = shutil.copy(isbi / "test" / "4.png", tmp_path / "cut.png")
    mask, probability = _cli(Path(section), tmp_path)
    layers = viewer.open(tmp_path / "cut_mask.png", plugin="emseg-lite")
    assert [layer.name for layer in layers] == ["cut", "cut probability", "cut membrane"]
    from emseg_lite.runtime.napari.reader import read

    both = read([str(tmp_path / "cut_mask.png"), str(tmp_path / "cut_prob.tif")])  # the section once
    assert [meta["name"] for _, meta, _ in both] == ["cut", "cut probability", "cut membrane"]
    np.testing.assert_array_equal(viewer.layers["cut membrane"].data, mask == 0)
    np.testing.assert_array_equal(viewer.layers["cut probability"].data, probability)

    sections = tmp_path / "sections"
    sections.mkdir()
    for i in range(2):
        shutil.copy(isbi / "test" / f"{i}.png", sections / f"{i}.png")
    subprocess.run([CLI, "volume", str(sections), "-o", str(tmp_path / "seg.ome.zarr"), "--workers", "1", "-q",
                    "--pixel-size-nm", "4"], check=True)
    layers = viewer.open(tmp_path / "seg.ome.zarr", plugin="emseg-lite")
    names = [layer.name for layer in layers]
    assert names == ["sections", "seg.ome.zarr membrane", "seg.ome.zarr regions"], names
    assert [tuple(layer.scale) for layer in layers] == [(1.0, 4.0, 4.0)] * 3, [layer.scale for layer in layers]
    assert layers[1].data.shape == (2, 512, 512) and set(np.unique(np.asarray(layers[1].data))) == {0, 1}
    np.testing.assert_array_equal(np.asarray(layers[0].data[1]), np.asarray(Image.open(sections / "1.png")))

    subprocess.run([CLI, "volume", str(sections), "-o", str(tmp_path / "obj.ome.zarr"), "--workers", "1", "-q",
                    "--pixel-size-nm", "4", "--neurons"], check=True)
    layers = {layer.name: layer for layer in viewer.open(tmp_path / "obj.ome.zarr", plugin="emseg-lite")}
    fragments, neurons = layers["obj.ome.zarr fragments"], layers["obj.ome.zarr neurons"]
    assert fragments.data.shape == (2, 64, 64) and neurons.data.shape == (2, 512, 512)
    assert tuple(neurons.scale) == (1.0, 4.0, 4.0) and tuple(fragments.scale) == (1.0, 32.0, 32.0)
    # fragments lie on the working pixel of 8 x 8 sections' pixels: the pixel (y, x) of a
    # section falls in the fragment cell (y // 8, x // 8)
    for y, x in ((0, 0), (100, 203), (511, 511)):
        cell = np.round(fragments.world_to_data(neurons.data_to_world((1, y, x)))).astype(int)
        assert tuple(cell) == (1, y // 8, x // 8), (y, x, cell)


def test_bad_input_is_one_message_and_the_layers_stay(viewer_and_widget, qtbot, test_slice, tmp_path, monkeypatch):
    viewer, widget = viewer_and_widget
    viewer.add_image(np.zeros((64, 64, 3), np.uint8), name="photo", rgb=True)
    viewer.add_image(np.zeros((2, 2, 64, 64), np.uint8), name="hyper")
    before = [layer.name for layer in viewer.layers]
    for name, expected in (("photo", "photo: an RGB image"), ("hyper", "hyper: a 4-D array")):
        widget.image.setCurrentText(name)
        widget.segment()
        assert widget.status.text().startswith(expected), widget.status.text()
    orphan = tmp_path / "orphan.tflite"
    from emseg_lite.runtime.engine.registry import EMBEDDED_DIR

    shutil.copy(EMBEDDED_DIR / "emseg-int8.tflite", orphan)
    viewer.open(test_slice)
    widget.image.setCurrentText(Path(test_slice).stem)
    widget.model.setEditText(str(orphan))
    widget.segment()
    assert widget.status.text() == f"{tmp_path / 'orphan.json'}: model card not found (expected a .json beside the model)"
    widget.finetune()
    assert widget.status.text().startswith("nothing to fine-tune on")
    from emseg_lite.runtime.napari import jobs

    monkeypatch.setattr(jobs, "TRAIN_EXTRA", (*jobs.TRAIN_EXTRA, "emseg_absent_module"))
    widget.finetune()
    assert widget.status.text() == ('fine-tuning needs the train extra (emseg_absent_module missing): '
                                    'pip install "emseg-lite[train]", then restart napari')
    assert [layer.name for layer in viewer.layers] == [*before, Path(test_slice).stem]
    assert widget.worker is None


def test_cancel_stops_between_blocks_and_adds_nothing(viewer_and_widget, qtbot, isbi):
    viewer, widget = viewer_and_widget
    viewer.add_image(np.stack([np.asarray(Image.open(isbi / "test" / f"{i}.png")) for i in range(30)]), name="all")
    widget.segment()
    qtbot.waitUntil(lambda: widget.progress.value() >= 1, timeout=WAIT_MS)
    widget.cancel.click()
    qtbot.waitUntil(lambda: not widget.cancel.isEnabled(), timeout=WAIT_MS)
    assert "cancelled" in widget.status.text() and widget.progress.value() == 0
    assert [layer.name for layer in viewer.layers] == ["all"]


def test_cancel_kills_the_fine_tune_and_undone_strokes_are_not_trained_on(viewer_and_widget, qtbot, isbi,
                                                                          tmp_path):
    from emseg_lite.runtime.napari.jobs import missing_train_extra

    if missing_train_extra():
        missing(missing_train_extra())
    viewer, widget = viewer_and_widget
    section = shutil.copy(isbi / "test" / "3.png", tmp_path / "three.png")
    viewer.open(section)
    membrane = _segmented(widget, qtbot, "three")
    segmented = membrane.data.copy()
    membrane.brush_size = 31
    membrane.paint((300, 300), 1)
    qtbot.waitUntil(lambda: widget.corrections.sections() == [0], timeout=5000)
    membrane.undo()  # napari announces no paint for an undo
    model = widget.model.currentText()
    widget.finetune()
    saved = tifffile.imread(widget.corrections.labels / "0000.tif")
    np.testing.assert_array_equal(saved == 0, segmented == 1)  # saved again as the layer is now
    job = widget.job
    qtbot.waitUntil(lambda: job.process is not None, timeout=WAIT_MS)
    qtbot.wait(1500)  # TensorFlow is loading in the child
    widget.cancel.click()
    qtbot.waitUntil(lambda: not widget.cancel.isEnabled(), timeout=10_000)
    assert job.process.poll() is not None  # killed, not left training
    assert "fine-tuning: cancelled" in widget.status.text() and widget.model.currentText() == model


def test_fine_tune_from_painted_sections_then_segment_again(viewer_and_widget, qtbot, isbi, tmp_path):
    from emseg_lite.runtime.napari.jobs import missing_train_extra

    if missing_train_extra():
        missing(missing_train_extra())
    viewer, widget = viewer_and_widget
    pages = np.stack([np.asarray(Image.open(isbi / "train" / "images" / f"{i}.png")) for i in range(4)])
    stack = tmp_path / "train.tif"
    tifffile.imwrite(stack, pages, photometric="minisblack")
    viewer.open(stack)
    membrane = _segmented(widget, qtbot, "train")
    labels = np.stack([np.asarray(Image.open(isbi / "train" / "labels" / f"{i}.png")) for i in range(4)])
    rows, cols = np.indices(labels.shape[1:]).reshape(2, -1)
    for index in range(4):  # the user corrects four sections to the truth
        viewer.dims.set_current_step(0, index)
        membrane.data_setitem((np.full(rows.size, index), rows, cols), (labels[index] == 0).astype(np.uint8).ravel())
    qtbot.waitUntil(lambda: widget.corrections.sections() == [0, 1, 2, 3], timeout=5000)
    widget.quick.setChecked(True)
    widget.finetune()
    qtbot.waitUntil(lambda: "segmented with emseg-int8.tflite" in widget.status.text()
                    and not widget.cancel.isEnabled(), timeout=900_000)
    model = Path(widget.model.currentText())
    assert model.name == "emseg-int8.tflite" and model.with_suffix(".json").exists()
    assert widget.corrections.folder in model.parents
