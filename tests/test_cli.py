"""`emseg-lite` end to end, as a user runs it: real slices, the embedded model, exit codes,
and one clear line (no traceback, no output file) for every kind of bad input."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from emseg_lite.runtime.engine import registry

CLI = str(Path(sys.executable).parent / "emseg-lite")


def run(*args, cwd=None):
    return subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, cwd=cwd)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_clean_failure(result, path_text: str, problem: str, code: int = 2):
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert path_text in lines[0] and problem in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def outputs_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "_mask" in p.name or "_prob" in p.name or ".tmp" in p.name)


def test_regions_are_the_cells_components_unique_across_a_stack(isbi, tmp_path):
    """--regions: uint32 ids of each section's cells (0 on membrane), numbered on across pages;
    a folder run afterwards does not take the region files for sections."""
    from emseg_lite.runtime.post.regions import label

    pages = np.stack([np.asarray(Image.open(isbi / "test" / f"{i}.png")) for i in range(3)])
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, pages, imagej=True, metadata={"axes": "ZYX"})
    result = run("segment", stack, "--regions", "--block", "200")
    assert result.returncode == 0, result.stderr
    assert "stack_regions.tif" in result.stdout
    regions = tifffile.imread(tmp_path / "stack_regions.tif")
    membrane = tifffile.imread(tmp_path / "stack_mask.tif") == 0
    assert regions.dtype == np.uint32 and regions.shape == pages.shape
    seen = set()
    for z in range(3):
        np.testing.assert_array_equal(regions[z] == 0, membrane[z])
        cells = label(~membrane[z])[0]
        pairs = np.unique(np.stack([regions[z].ravel(), cells.ravel()]), axis=1).shape[1]
        assert pairs == np.unique(cells).size == np.unique(regions[z]).size > 100
        ids = set(np.unique(regions[z])) - {0}
        assert not ids & seen
        seen |= ids
    assert int(regions.max()) == len(seen)
    again = run("segment", tmp_path, "-o", tmp_path / "again", "-q")
    assert again.returncode == 0 and sorted(p.name for p in (tmp_path / "again").iterdir()) == ["stack_mask.tif"]


def test_embedded_int8_model_ships_small():
    models = registry.embedded_models()
    assert "int8" in models
    assert models["int8"].stat().st_size <= 2 * 1024 * 1024


def test_segment_real_slice_out_of_the_box(test_slice, tmp_path):
    source = tmp_path / "slice.png"
    shutil.copy(test_slice, source)
    before = sha(source)
    result = run("segment", source)
    assert result.returncode == 0, result.stderr
    mask = np.array(Image.open(tmp_path / "slice_mask.png"))
    assert mask.shape == (512, 512) and set(np.unique(mask)) == {0, 255}
    membrane = np.mean(mask == 0)
    assert 0.03 < membrane < 0.4, f"implausible membrane fraction {membrane:.3f}"
    assert sha(source) == before
    assert "ms per slice" in result.stderr


def test_segment_big_endian_tiff_from_another_larva(vnc_tiff, tmp_path):
    result = run("segment", vnc_tiff, "-o", tmp_path, "--probabilities", "--overlay")
    assert result.returncode == 0, result.stderr
    mask = np.array(Image.open(tmp_path / "00_mask.png"))
    assert mask.shape == (1024, 1024) and set(np.unique(mask)) == {0, 255}
    prob = tifffile.imread(tmp_path / "00_prob.tif")
    assert prob.shape == (1024, 1024) and prob.dtype == np.float32 and 0 <= prob.min() <= prob.max() <= 1
    overlay = np.array(Image.open(tmp_path / "00_overlay.png"))
    assert overlay.shape == (1024, 1024, 3)


def test_stack_gives_one_mask_page_per_section(isbi, tmp_path):
    pages = np.stack([np.array(Image.open(isbi / "test" / f"{i}.png")) for i in range(3)])
    tifffile.imwrite(tmp_path / "stack.tif", pages, imagej=True, metadata={"axes": "ZYX"}, byteorder=">")
    result = run("segment", tmp_path / "stack.tif")
    assert result.returncode == 0, result.stderr
    masks = tifffile.imread(tmp_path / "stack_mask.tif")
    assert masks.shape == (3, 512, 512) and set(np.unique(masks)) == {0, 255}
    single = run("segment", isbi / "test" / "1.png", "-o", tmp_path / "single")
    assert single.returncode == 0
    np.testing.assert_array_equal(masks[1], np.array(Image.open(tmp_path / "single" / "1_mask.png")))


def test_folder_and_glob_inputs(isbi, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        shutil.copy(isbi / "test" / f"{i}.png", folder / f"{i}.png")
    assert run("segment", folder, "--quiet").returncode == 0
    assert outputs_in(folder) == ["0_mask.png", "1_mask.png"]
    again = run("segment", folder, "--overwrite", "-q")  # its own masks are not inputs
    assert again.returncode == 0 and outputs_in(folder) == ["0_mask.png", "1_mask.png"]
    globbed = run("segment", str(folder / "*.png"), "-o", tmp_path / "out", "-q")
    assert globbed.returncode == 0 and outputs_in(tmp_path / "out") == ["0_mask.png", "1_mask.png"]


def test_some_failed_exits_1_and_keeps_the_good_ones(test_slice, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("not a png")
    result = run("segment", test_slice, bad, "-o", tmp_path)
    assert_clean_failure(result, str(bad), "not an image", code=1)
    assert outputs_in(tmp_path) == ["0_mask.png"]


def _bad_inputs(tmp, test_slice, vnc_tiff):
    png, tif = test_slice.read_bytes(), vnc_tiff.read_bytes()
    (tmp / "empty_dir").mkdir()
    (tmp / "notes.png").write_text("hello")
    (tmp / "cut.png").write_bytes(png[: len(png) // 2])
    (tmp / "cut.tif").write_bytes(tif[: len(tif) // 3])
    tifffile.imwrite(tmp / "zero.tif", np.zeros((0, 4), np.uint8))
    tifffile.imwrite(tmp / "complex.tif", np.zeros((4, 4), np.complex64))
    tifffile.imwrite(tmp / "five.tif", np.zeros((4, 4, 5), np.uint8), planarconfig="contig")
    shutil.copy(test_slice, tmp / "big.png")
    return {
        "missing file": ([tmp / "absent.png"], "absent.png", "no such file"),
        "folder without images": ([tmp / "empty_dir"], "empty_dir", "no images"),
        "pattern without matches": ([str(tmp / "*.nothing")], "*.nothing", "no files match"),
        "non-image file": ([tmp / "notes.png"], "notes.png", "not an image"),
        "truncated png": ([tmp / "cut.png"], "cut.png", "truncated or corrupt image"),
        "truncated tiff": ([tmp / "cut.tif"], "cut.tif", "truncated or corrupt TIFF"),
        "zero-size image": ([tmp / "zero.tif"], "zero.tif", "image is empty"),
        "unsupported dtype": ([tmp / "complex.tif"], "complex.tif", "unsupported pixel type"),
        "unsupported channels": ([tmp / "five.tif"], "five.tif", "unsupported"),
        "decompression bomb": ([tmp / "big.png", "--max-pixels", "1000"], "big.png", "raise it with --max-pixels"),
    }


BAD_INPUTS = ["missing file", "folder without images", "pattern without matches", "non-image file",
              "truncated png", "truncated tiff", "zero-size image", "unsupported dtype", "unsupported channels",
              "decompression bomb"]


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_and_no_output(case, tmp_path, test_slice, vnc_tiff):
    args, path_text, problem = _bad_inputs(tmp_path, test_slice, vnc_tiff)[case]
    before = {p.name: sha(p) for p in tmp_path.iterdir() if p.is_file()}
    assert_clean_failure(run("segment", *args), path_text, problem)
    assert outputs_in(tmp_path) == []
    assert {p.name: sha(p) for p in tmp_path.iterdir() if p.is_file()} == before


def _model_copy(tmp_path: Path) -> Path:
    source = registry.embedded_models()["int8"]
    target = tmp_path / "m.tflite"
    shutil.copy(source, target)
    shutil.copy(source.with_suffix(".json"), target.with_suffix(".json"))
    return target


def test_corrupt_tflite_is_refused(tmp_path, test_slice):
    model = _model_copy(tmp_path)
    model.write_bytes(b"\0" * 1000)
    card = json.loads(model.with_suffix(".json").read_text())
    card["model"].update(size_bytes=1000, sha256=hashlib.sha256(b"\0" * 1000).hexdigest())
    model.with_suffix(".json").write_text(json.dumps(card))
    assert_clean_failure(run("segment", test_slice, "-o", tmp_path, "--model", model), "m.tflite", "not a valid TFLite model")
    assert outputs_in(tmp_path) == []


@pytest.mark.parametrize("damage,problem", [
    ("missing", "model card not found"),
    ("corrupt", "not valid JSON"),
    ("other model", "does not match its card"),
    ("wrong tensors", "card does not match the model"),
])
def test_bad_model_card_is_refused(damage, problem, tmp_path, test_slice):
    model = _model_copy(tmp_path)
    card_path = model.with_suffix(".json")
    if damage == "missing":
        card_path.unlink()
    elif damage == "corrupt":
        card_path.write_text(card_path.read_text()[:200])
    elif damage == "other model":
        model.write_bytes(model.read_bytes() + b"\0")
    else:
        card = json.loads(card_path.read_text())
        card["input"]["dtype"] = "float32"
        card_path.write_text(json.dumps(card))
    assert_clean_failure(run("segment", test_slice, "-o", tmp_path, "--model", model), "m.", problem)
    assert outputs_in(tmp_path) == []


def test_unknown_model_name_lists_the_choices(test_slice, tmp_path):
    assert_clean_failure(run("segment", test_slice, "-o", tmp_path, "--model", "int4"), "int4", "int8")


def test_unloadable_delegate_is_a_clear_error(test_slice, tmp_path):
    assert_clean_failure(run("segment", test_slice, "-o", tmp_path, "--delegate", "libnope_gpu_delegate.so"),
                         "libnope_gpu_delegate.so", "cannot load TFLite delegate")


def test_unwritable_output_folder(test_slice, tmp_path):
    if os.geteuid() == 0:
        target = Path("/proc/self/emseg-out")  # even root cannot create files in procfs
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "out"
    assert_clean_failure(run("segment", test_slice, "-o", target), str(target), "cannot")
    file_as_folder = tmp_path / "file.txt"
    file_as_folder.write_text("x")
    assert_clean_failure(run("segment", test_slice, "-o", file_as_folder), "file.txt", "not a folder")


def test_output_never_overwrites_an_input(test_slice, tmp_path):
    shutil.copy(test_slice, tmp_path / "a.png")
    shutil.copy(test_slice, tmp_path / "a_mask.png")
    before = sha(tmp_path / "a_mask.png")
    result = run("segment", tmp_path / "a.png", tmp_path / "a_mask.png", "--overwrite")
    assert result.returncode == 1
    assert "a_mask.png: output of" in result.stderr and "would overwrite an input" in result.stderr
    assert sha(tmp_path / "a_mask.png") == before


def test_existing_output_needs_overwrite(test_slice, tmp_path):
    assert run("segment", test_slice, "-o", tmp_path, "-q").returncode == 0
    stamp = sha(tmp_path / "0_mask.png")
    assert_clean_failure(run("segment", test_slice, "-o", tmp_path), "0_mask.png", "--overwrite")
    assert run("segment", test_slice, "-o", tmp_path, "--overwrite", "-q").returncode == 0
    assert sha(tmp_path / "0_mask.png") == stamp


def test_threshold_and_post_options_change_the_mask(test_slice, tmp_path):
    fractions = {}
    for name, extra in {"low": ["--post", "none", "--threshold", "0.2"], "high": ["--post", "none", "--threshold", "0.8"]}.items():
        assert run("segment", test_slice, "-o", tmp_path / name, *extra).returncode == 0
        fractions[name] = np.mean(np.array(Image.open(tmp_path / name / "0_mask.png")) == 0)
    assert fractions["low"] > fractions["high"]


def test_info_reports_card_backend_and_threads():
    result = run("info", "--threads", "2")
    assert result.returncode == 0, result.stderr
    assert "ai-edge-litert" in result.stdout and "threads        2" in result.stdout
    assert "variant        int8" in result.stdout and "AMX            " in result.stdout
    data = json.loads(run("info", "--json").stdout)
    assert data["card"]["variant"] == "int8" and data["runtime"]["backend"].startswith("ai-edge-litert")


def test_evaluate_on_validation_sections(isbi):
    result = run("evaluate", "--images", isbi / "train" / "images", "--labels", isbi / "train" / "labels",
                 "--sections", "25-29", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for method in ("none", "watershed"):
        assert [s["name"] for s in report[method]["slices"]] == [f"{i}.png" for i in range(25, 30)]
        assert 0.5 < report[method]["mean"]["v_rand"] <= 1.0
    challenge = report["challenge"]  # the leaderboard's figures: best of the threshold sweep
    assert challenge["v_rand"] >= report["none"]["mean"]["v_rand"] - 1e-9 and 0.8 < challenge["v_info"] <= 1.0
    table = run("evaluate", "--images", isbi / "train" / "images", "--labels", isbi / "train" / "labels",
                "--sections", "29")
    assert "V_rand" in table.stdout and "mean" in table.stdout and "ISBI 2012 challenge figures" in table.stdout


def test_evaluate_instance_labels_under_either_metric(data_root):
    fib = data_root / "fib-gala"
    args = ("evaluate", "--images", fib / "train-volume.tif", "--labels", fib / "train-labels.tif", "--sections", "49")
    adapted = json.loads(run(*args, "--json").stdout)
    isbi = json.loads(run(*args, "--json", "--metric", "isbi").stdout)
    assert "challenge" not in adapted  # the ISBI sweep is defined for membrane masks only
    assert adapted["metric"] == "adapted" and isbi["metric"] == "isbi"
    # Thinning removes the threshold mask's thick membranes, which the adapted Rand counts as singletons.
    assert isbi["none"]["mean"]["v_rand"] > adapted["none"]["mean"]["v_rand"] + 0.1
    table = run(*args)
    assert table.stdout.startswith("instances labels, adapted V_rand / V_info")
    refused = run(*args, "--label-kind", "membrane")
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "train-labels.tif" in refused.stderr and "binary" in refused.stderr


def test_cli_choices_are_the_libraries():
    from emseg_lite.runtime.cli import common
    from emseg_lite.runtime.post import labels, metrics

    assert tuple(kind.value for kind in common.LabelKind) == labels.KINDS
    assert tuple(metric.value for metric in common.Metric) == metrics.METRICS
    from emseg_lite.runtime.cli import neurons
    from emseg_lite.runtime.post import objects

    assert tuple(scoring.value for scoring in neurons.Scoring) == tuple(objects.SCORINGS)


def test_help_loads_neither_model_nor_interpreter():
    code = ("import sys\nfrom emseg_lite.runtime.cli import app\n"
            "try:\n    app(['segment', '--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('numpy', 'scipy', 'ai_edge_litert', 'tensorflow') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "HEAVY []" in result.stdout, result.stdout[-300:]


def test_segmenting_never_imports_tensorflow(test_slice, tmp_path):
    code = ("import sys\nfrom emseg_lite.runtime import Segmenter\nfrom emseg_lite.runtime.formats.reader import read_slices\n"
            f"mask = Segmenter.load().segment(read_slices({str(test_slice)!r}).pages[0])\n"
            "print('TF', [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')], mask.shape)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "TF [] (512, 512)" in result.stdout, result.stderr[-500:]


@pytest.fixture(scope="module")
def mosaic_tiff(data_root, tmp_path_factory):
    """A 4096 x 4096 section of real vnc-stack2 sections (each in four orientations), tiled and deflated."""
    pages = [tifffile.imread(data_root / "vnc-stack2" / f"0{i}.tif") for i in range(4)]
    mosaic = np.block([[np.rot90(pages[(r + c) % 4], k=r) for c in range(4)] for r in range(4)])
    path = tmp_path_factory.mktemp("big") / "mosaic.tif"
    tifffile.imwrite(path, mosaic, tile=(256, 256), compression="zlib")
    return path, mosaic


def test_big_section_block_by_block_equals_the_python_api(mosaic_tiff, tmp_path):
    from emseg_lite.runtime import Segmenter

    path, mosaic = mosaic_tiff
    before = sha(path)
    result = run("segment", path, "-o", tmp_path, "--block", "1008", "--probabilities")
    assert result.returncode == 0, result.stderr
    assert "segmenting" in result.stderr  # progress for long sections
    mask = np.array(Image.open(tmp_path / "mosaic_mask.png"))
    segmenter = Segmenter.load()
    np.testing.assert_array_equal(mask, segmenter.segment(mosaic, block=1008))
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "mosaic_prob.tif"), segmenter.probabilities(mosaic))
    assert sha(path) == before


def test_section_too_big_for_png_becomes_a_tiled_tiff(mosaic_tiff, tmp_path):
    from emseg_lite.runtime import Segmenter
    from emseg_lite.runtime.core.geometry import Region
    from emseg_lite.runtime.engine.intensity import intensity_range
    from emseg_lite.runtime.formats import sinks

    path, mosaic = mosaic_tiff
    section = np.pad(np.block([[mosaic, mosaic.T], [mosaic[::-1], mosaic[:, ::-1]]]), ((0, 256), (0, 128)), "reflect")
    assert sinks.layout(1, *section.shape) == "tiled"
    big = tmp_path / "big.tif"
    tifffile.imwrite(big, section)
    result = run("segment", big, "-o", tmp_path / "out", "--post", "none", "-q")
    assert result.returncode == 0, result.stderr
    with tifffile.TiffFile(tmp_path / "out" / "big_mask.tif") as tif:
        assert tif.pages[0].is_tiled and tif.pages[0].shape == section.shape
        mask = tif.asarray()
    segmenter = Segmenter.load()
    corner = Region(section.shape[0] - 1536, section.shape[1] - 1536, *section.shape)
    encode = segmenter.encoder(section.dtype, *intensity_range(section, segmenter.card.normalization))
    probability = segmenter.window_probabilities(section, (0, 0), *section.shape, corner, encode)
    expected = segmenter.to_mask(probability > segmenter.card.postprocessing.threshold)
    np.testing.assert_array_equal(mask[corner.slices], expected)


def _special_inputs(tmp: Path, vnc_tiff: Path):
    (tmp / "loop.png").symlink_to(tmp / "loop.png")
    os.mkfifo(tmp / "pipe.png")
    tifffile.imwrite(tmp / "nan.tif", np.full((64, 64), np.nan, np.float32))
    broken_imagej = vnc_tiff.read_bytes().replace(b"images=1", b"images=9")
    (tmp / "badij.tif").write_bytes(broken_imagej)
    return {
        "symlink loop": ("loop.png", "cannot be opened (Too many levels of symbolic links)"),
        "fifo": ("pipe.png", "is not a regular file"),
        "all nan": ("nan.tif", "has no finite pixel value"),
    }


@pytest.mark.parametrize("case", ["symlink loop", "fifo", "all nan"])
def test_special_inputs_are_one_line_without_hanging(case, tmp_path, vnc_tiff):
    name, problem = _special_inputs(tmp_path, vnc_tiff)[case]
    result = subprocess.run([CLI, "segment", str(tmp_path / name), "-o", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=60)
    assert_clean_failure(result, name, problem)
    assert not (tmp_path / "out").exists() or outputs_in(tmp_path / "out") == []
    assert "slice(s) from" not in result.stderr  # no timing summary after nothing was done


def test_tifffile_complaints_do_not_leak_beside_our_errors(tmp_path, vnc_tiff):
    _special_inputs(tmp_path, vnc_tiff)
    result = run("segment", tmp_path / "badij.tif", "-o", tmp_path / "out", "-q")
    assert "tifffile" not in result.stderr and "ERROR:" not in result.stderr, result.stderr


def test_a_failed_file_leaves_none_of_its_outputs(test_slice, tmp_path):
    (tmp_path / "0_prob.tif").mkdir()  # the probability map cannot replace a folder: its commit fails
    result = run("segment", test_slice, "-o", tmp_path, "--probabilities", "--overwrite")
    assert result.returncode == 2 and "0_prob.tif: cannot write" in result.stderr, result.stderr
    assert not (tmp_path / "0_mask.png").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["0_prob.tif"]


def test_a_file_gone_between_listing_and_reading(isbi, tmp_path):
    from emseg_lite.runtime import Segmenter
    from emseg_lite.runtime.pipelines import batch, outputs

    for i in range(3):
        shutil.copy(isbi / "test" / f"{i}.png", tmp_path / f"{i}.png")
    files, _ = outputs.expand_inputs([str(tmp_path)])
    (tmp_path / "1.png").unlink()
    outputs.check_out_dir(tmp_path / "out")
    events = list(batch.run(Segmenter.load(), files, batch.Options(out_dir=tmp_path / "out")))
    failed = [e for e in events if isinstance(e, batch.FileFailed)]
    assert len(failed) == 1 and "1.png: no such file" in str(failed[0].error)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0_mask.png", "2_mask.png"]


def test_a_block_that_fails_to_decode_leaves_no_output(mosaic_tiff, tmp_path):
    path, mosaic = mosaic_tiff
    broken = tmp_path / "broken.tif"
    tifffile.imwrite(broken, mosaic, tile=(256, 256), compression="zlib")
    with tifffile.TiffFile(broken) as tif:
        offset = tif.pages[0].dataoffsets[200]
    raw = bytearray(broken.read_bytes())
    raw[offset : offset + 256] = b"\xff" * 256
    broken.write_bytes(bytes(raw))
    result = run("segment", broken, "-o", tmp_path / "out", "--block", "1008", "--probabilities")
    assert_clean_failure(result, "broken.tif", "cannot decode section 0, tile 200")
    assert outputs_in(tmp_path / "out") == []
