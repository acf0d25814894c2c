"""Fine-tuning the shipped model on a lab's sections: fib-gala (FIB-SEM, instance labels), --quick.

A few steps from the shipped float weights, then export, then `emseg-lite segment`
with the result: every stage reads what the previous one wrote, on a clean
checkout. Bad input is one line naming the file, exit 2, nothing written.
"""
from __future__ import annotations

import dataclasses
import gzip
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
from conftest import REPO
from PIL import Image
from typer.testing import CliRunner

from benchmarks import neuroproof
from emseg_lite.runtime.core.card import ModelCard
from emseg_lite.runtime.core.files import file_sha256
from emseg_lite.runtime.engine.registry import EMBEDDED_DIR
from emseg_lite.runtime.formats.reader import open_section
from emseg_lite.runtime.pipelines.datasets import load_labeled

SECTIONS = "0,12,24,36,48"


@pytest.fixture(scope="session")
def fib(data_root) -> Path:
    return data_root / "fib-gala"


@pytest.fixture(scope="session")
def quick_finetune(fib, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finetune") / "run"
    subprocess.run([sys.executable, "-m", "emseg_lite.train.finetune", "--images", str(fib / "train-volume.tif"),
                    "--labels", str(fib / "train-labels.tif"), "--sections", SECTIONS, "--out", str(out), "--quick"],
                   check=True, cwd=REPO, capture_output=True)
    return out


@pytest.fixture(scope="session")
def quick_finetune_models(quick_finetune, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finetune-models")
    subprocess.run([sys.executable, "-m", "emseg_lite.export", str(quick_finetune), "--out", str(out),
                    "--min-agreement", "0"], check=True, cwd=REPO, capture_output=True)
    return out


def test_shipped_models_name_the_shipped_float_model():
    keras_card = ModelCard.load(EMBEDDED_DIR / "emseg-keras.json")
    keras_card.check_model_file(EMBEDDED_DIR / "emseg-keras.keras")
    assert keras_card.variant == "keras" and keras_card.full_model is None
    for variant in ("int8", "float16", "float32"):
        card = ModelCard.load(EMBEDDED_DIR / f"emseg-{variant}.json")
        assert card.full_model == keras_card.model, variant
        assert card.training.date == keras_card.training.date and card.training.command == keras_card.training.command


def test_shipped_float_model_is_the_one_the_embedded_float32_model_came_from(isbi):
    """The Keras weights reproduce the embedded float32 TFLite model on a held-out ISBI section."""
    import math

    from emseg_lite.runtime.pipelines.datasets import locate
    from emseg_lite.runtime.pipelines.segmenter import Segmenter
    from emseg_lite.train.keras2 import keras
    from emseg_lite.train.predict import predict_slice

    card = ModelCard.load(EMBEDDED_DIR / "emseg-keras.json")
    model = keras.models.load_model(EMBEDDED_DIR / "emseg-keras.keras", compile=False)
    image = load_labeled(*locate(isbi)).images[27]
    align = card.tiling.align
    exact = math.ceil(card.architecture.receptive_field_radius / align) * align
    whole = Segmenter.load("float32", threads=2, tile=512 + 2 * exact, overlap=exact)
    np.testing.assert_allclose(predict_slice(model, image, card.normalization, exact, align),
                               whole.probabilities(image), atol=1e-4)


def test_quick_finetune_writes_a_self_describing_run(quick_finetune):
    card = ModelCard.load(quick_finetune / "card.json")
    shipped = ModelCard.load(EMBEDDED_DIR / "emseg-keras.json")
    assert card.variant == "keras" and card.training.base_model.sha256 == shipped.model.sha256
    assert card.training.labels.kind == "instances" and card.training.labels.boundary_width >= 1
    assert card.training.train_sections == [0, 12, 24, 36] and card.training.val_sections == [48]
    assert {e.metric for e in card.validation.values()} == {"adapted"}
    assert card.comparison.use in ("fine-tuned", "zero-shot") and card.comparison.sections == [48]
    assert card.comparison.zero_shot.v_rand > 0.5, "the shipped model segments FIB-SEM, if not well"
    assert card.architecture == shipped.architecture and card.normalization == shipped.normalization


def test_export_and_segment_with_the_fine_tuned_model(quick_finetune, quick_finetune_models, fib, tmp_path):
    folder = quick_finetune_models
    keras_card = ModelCard.load(folder / "emseg-keras.json")
    assert keras_card.model.sha256 == file_sha256(folder / "emseg-keras.keras")
    int8 = ModelCard.load(folder / "emseg-int8.json")
    assert int8.full_model == keras_card.model
    assert int8.comparison.use in ("fine-tuned", "zero-shot") and int8.validation["variant"].metric == "adapted"
    section = tmp_path / "section.tif"
    tifffile.imwrite(section, tifffile.imread(fib / "test-volume.tif")[0])
    cli = Path(sys.executable).with_name("emseg-lite")
    result = subprocess.run([str(cli), "segment", str(section), "--model", str(folder / "emseg-int8.tflite"),
                             "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    mask = np.array(Image.open(tmp_path / "out" / "section_mask.png"))
    assert mask.shape == (100, 200) and set(np.unique(mask)) == {0, 255}


def test_fine_tuned_set_can_be_a_base(quick_finetune_models):
    from emseg_lite.train.base import load_base

    base = load_base(quick_finetune_models)
    assert base.card.model.sha256 == file_sha256(quick_finetune_models / "emseg-keras.keras")


def test_held_out_sections_only_when_there_are_enough(fib):
    from emseg_lite.train.adapt import load_sections
    from emseg_lite.train.config import FineTuneConfig

    config = FineTuneConfig(images=str(fib / "train-volume.tif"), labels=str(fib / "train-labels.tif"))
    five = load_sections(dataclasses.replace(config, sections=[0, 12, 24, 36, 48]), 16)
    assert five.train_ids == [0, 12, 24, 36] and five.val_ids == [48] and five.crop == 96
    three = load_sections(dataclasses.replace(config, sections=[0, 24, 48]), 16)
    assert three.train_ids == [0, 24, 48] and three.val is None
    ten = load_sections(dataclasses.replace(config, sections=list(range(0, 50, 5))), 16)
    assert ten.val_ids == [40, 45]


# --- bad input: one line naming the file, exit 2, nothing written -------------------------------------


def _finetune(images, labels, out, *extra):
    from emseg_lite.train.finetune import app

    return CliRunner().invoke(
        app, ["--images", str(images), "--labels", str(labels), "--out", str(out), "--quick", *map(str, extra)])


def _volume(fib, tmp_path, images=None, labels=None):
    images = tifffile.imread(fib / "train-volume.tif")[:5] if images is None else images
    labels = tifffile.imread(fib / "train-labels.tif")[:5] if labels is None else labels
    tifffile.imwrite(tmp_path / "images.tif", images, photometric="minisblack")
    tifffile.imwrite(tmp_path / "labels.tif", labels, photometric="minisblack")
    return tmp_path / "images.tif", tmp_path / "labels.tif"


def _refused(result, out, pattern):
    _refusal(result.exit_code, result.stdout, result.stderr, out, pattern)


def _refusal(code: int, stdout: str, stderr: str, out: Path, pattern: str) -> None:
    """Exit 2, one line on stderr matching ``pattern``, ``out`` never created."""
    assert code == 2, (code, stdout, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(pattern, lines[0]), stderr
    assert not out.exists()


def test_bad_inputs_are_refused_before_anything_is_written(fib, tmp_path):
    raw = tifffile.imread(fib / "train-volume.tif")[:5]
    ids = tifffile.imread(fib / "train-labels.tif")[:5]
    out = tmp_path / "run"
    cases = [
        (dict(labels=ids[:4]), r"labels.tif: has 4 sections but images.tif has 5"),
        (dict(labels=ids[:, :, :150]), r"labels.tif: sections are 150 x 100 but images.tif has 200 x 100"),
        (dict(labels=np.full_like(ids, 7)), r"labels.tif: labels hold a single value \(7\)"),
        (dict(labels=ids.astype(np.float32)), r"labels.tif: labels are float32 values"),
        (dict(images=raw[:, :48, :48], labels=ids[:, :48, :48]), r"images.tif: sections are 48 x 48 px; fine-tuning needs at least 64 x 64"),
    ]
    for i, (arrays, pattern) in enumerate(cases):
        folder = tmp_path / f"case{i}"
        folder.mkdir()
        _refused(_finetune(*_volume(fib, folder, **arrays), out), out, pattern)
    no_boundary = ids.copy()
    no_boundary[2] = 5
    folder = tmp_path / "no-boundary"
    folder.mkdir()
    _refused(_finetune(*_volume(fib, folder, labels=no_boundary), out), out,
             r"labels.tif\[section 2\]: no membrane or boundary pixel")


def test_unreadable_weights_are_refused(fib, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(EMBEDDED_DIR, base)
    out = tmp_path / "run"
    (base / "emseg-keras.keras").write_bytes(b"not a model")
    images, labels = fib / "train-volume.tif", fib / "train-labels.tif"
    _refused(_finetune(images, labels, out, "--base", base), out, r"emseg-keras.keras: model file does not match its card")
    card = ModelCard.load(base / "emseg-keras.json")
    garbage = dataclasses.replace(card.model, size_bytes=11, sha256=file_sha256(base / "emseg-keras.keras"))
    dataclasses.replace(card, model=garbage).save(base / "emseg-keras.json")
    int8 = ModelCard.load(base / "emseg-int8.json")
    dataclasses.replace(int8, full_model=garbage).save(base / "emseg-int8.json")
    _refused(_finetune(images, labels, out, "--base", base), out, r"emseg-keras.keras: cannot read the Keras model")
    for name in ("emseg-keras.keras", "emseg-keras.json"):
        shutil.copy(EMBEDDED_DIR / name, base)
    _refused(_finetune(images, labels, out, "--base", base), out, r"emseg-int8.tflite: not from the same run as emseg-keras.keras")


def _neuroproof_clone(root: Path, sections: int = 250) -> tuple[Path, np.ndarray]:
    """A miniature clone of neuroproof_examples: 8 x 8 px sections, supervoxels 0-3, from section 200 on 4-7."""
    sample = root / neuroproof.SAMPLE
    (sample / "grayscale_maps").mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(sections, 8, 8), dtype=np.uint8)
    for z, image in enumerate(images):
        Image.fromarray(image).save(sample / "grayscale_maps" / f"iso.{2600 + z}.png")
    supervoxels = np.repeat(np.arange(4, dtype=np.int32), 16).reshape(8, 8)
    stack = np.broadcast_to(supervoxels, (sections, 8, 8)).copy()
    stack[200:] += 4
    transforms = np.array([[0, 0], [1, 7], [2, 7], [3, 9], [4, 11], [5, 11], [6, 12], [7, 12]])
    with h5py.File(root / "gt.h5", "w") as h5:
        h5["stack"], h5["transforms"] = stack, transforms
    with open(root / "gt.h5", "rb") as raw, gzip.open(sample / "groundtruth.h5.gz", "wb") as packed:
        packed.write(raw.read())
    return root, images


def test_neuroproof_cube_becomes_labelled_and_test_stacks_of_body_ids(tmp_path):
    """`make carryover-study` reads a clone of neuroproof_examples: supervoxels mapped to bodies, split by section."""
    clone, images = _neuroproof_clone(tmp_path / "clone")
    out = tmp_path / "tiff"
    neuroproof.main(clone, out)
    labelled = load_labeled(out / "labelled-images.tif", out / "labelled-labels.tif")
    test = load_labeled(out / "test-images.tif", out / "test-labels.tif")
    assert len(labelled.names) == 50 and len(test.names) == 100
    assert np.array_equal(labelled.images, images[:50]) and np.array_equal(test.images, images[150:])
    bodies = tifffile.imread(out / "test-labels.tif")
    assert bodies.dtype == np.uint32
    assert set(np.unique(bodies[0])) == {0, 7, 9} and set(np.unique(bodies[-1])) == {11, 12}
    assert open_section(out / "test-images.tif").pixel_size_nm == pytest.approx(10.0)


def test_neuroproof_refuses_a_folder_that_is_not_a_whole_clone(tmp_path):
    """A wrong path or a cut-short cube: one line naming it, exit 2, no stacks written."""
    empty = tmp_path / "empty"
    empty.mkdir()
    short, _ = _neuroproof_clone(tmp_path / "short", sections=120)
    out = tmp_path / "tiff"
    for clone, pattern in ((empty, r"empty: not a clone of janelia-flyem/neuroproof_examples"),
                           (short, r"training_sample2: has 120 sections; the split needs 250")):
        result = subprocess.run([sys.executable, "-m", "benchmarks.neuroproof", str(clone), str(out)],
                                cwd=REPO, capture_output=True, text=True)
        _refusal(result.returncode, result.stdout, result.stderr, out, pattern)
