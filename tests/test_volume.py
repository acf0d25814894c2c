"""`emseg-lite volume` on small real volumes, on a LocalCluster, as a user runs it.

Each section's result must equal `emseg-lite segment` on that section; a run
killed with SIGKILL and resumed must give the same arrays as one that was not
(in blocks, and while joining region ids across blocks);
pixel sizes must survive; ome-zarr-py must read the output.
"""
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
from PIL import Image

CLI = str(Path(sys.executable).parent / "emseg-lite")
SECTIONS = 6


def run(*args):
    return subprocess.run([CLI, *map(str, args)], capture_output=True, text=True)


def segment_masks(folder: Path, out: Path, *extra) -> np.ndarray:
    """`emseg-lite segment` on every section: (z, y, x) bool, True = membrane."""
    result = run("segment", folder, "-o", out, "-q", *extra)
    assert result.returncode == 0, result.stderr
    files = sorted(out.glob("*_mask.*"), key=lambda p: int(p.name.split("_")[0]))
    return np.stack([np.asarray(Image.open(p)) if p.suffix == ".png" else tifffile.imread(p) for p in files]) == 0


def arrays(path: Path) -> dict[str, np.ndarray]:
    group = zarr.open_group(str(path), mode="r")
    return {name: np.asarray(group[name]) for name in ("labels/membrane/0", "labels/regions/0", "done", "stitched")}


@pytest.fixture(scope="module")
def isbi_folder(isbi, tmp_path_factory):
    """The first sections of the ISBI test set, as a folder of PNGs named like a microscope does (2 before 10)."""
    folder = tmp_path_factory.mktemp("isbi") / "sections"
    folder.mkdir()
    for i in range(SECTIONS):
        shutil.copy(isbi / "test" / f"{i}.png", folder / f"{i * 4}.png")
    return folder


@pytest.fixture(scope="module")
def isbi_result(isbi_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("vol") / "isbi.ome.zarr"
    result = run("volume", isbi_folder, "-o", out, "--workers", "2")
    assert result.returncode == 0, result.stderr
    return out, result


def test_folder_volume_equals_segment_per_section(isbi_folder, isbi_result, tmp_path):
    out, result = isbi_result
    assert "MP/s" in result.stderr and "peak RSS per worker" in result.stderr
    written = arrays(out)
    expected = segment_masks(isbi_folder, tmp_path / "seg")
    np.testing.assert_array_equal(written["labels/membrane/0"] == 1, expected)
    assert written["done"].all()
    regions = written["labels/regions/0"]
    ids = [set(np.unique(regions[z])) - {0} for z in range(SECTIONS)]
    assert all(len(s) > 50 for s in ids) and not set.intersection(*ids)  # unique across the volume
    assert regions.dtype == np.uint32
    np.testing.assert_array_equal(regions == 0, written["labels/membrane/0"] == 1)  # 0 on membrane


def test_output_is_ome_zarr_that_ome_zarr_py_reads(isbi_result):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Multiscales, Reader

    out, _ = isbi_result
    nodes = list(Reader(parse_url(str(out)))())
    assert nodes[0].data[0].shape == (SECTIONS, 512, 512)
    labels = {node.metadata["name"]: node for node in nodes if any(isinstance(s, Label) for s in node.specs)}
    assert set(labels) == {"membrane", "regions"}
    assert all(any(isinstance(s, Multiscales) for s in node.specs) for node in labels.values())
    attrs = zarr.open_group(str(out), mode="r").attrs.asdict()
    assert attrs["emseg-lite"]["model"]["variant"] == "int8" and attrs["emseg-lite"]["model"]["sha256"]


def test_ome_zarr_input_keeps_its_pixel_size(isbi, tmp_path):
    pages = np.stack([np.asarray(Image.open(isbi / "test" / f"{i}.png")) for i in range(3)])
    source = tmp_path / "in.ome.zarr"
    group = zarr.open_group(str(source), mode="w", zarr_format=2)
    group.create_array("0", data=pages[np.newaxis], chunks=(1, 1, 256, 256))
    axes = [{"name": "c", "type": "channel"}] + [{"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"]
    group.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 50.0, 4.0, 4.0]}]}]}]
    out = tmp_path / "out.ome.zarr"
    result = run("volume", source, "-o", out, "--workers", "1", "--probabilities", "uint8")
    assert result.returncode == 0, result.stderr
    written = zarr.open_group(str(out), mode="r")
    for image in (written, written["labels/membrane"]):
        (scale,) = image.attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"]
        assert scale["scale"] == [50.0, 4.0, 4.0]
        assert [a["unit"] for a in image.attrs["multiscales"][0]["axes"]] == ["nanometer"] * 3
    assert written["probabilities"].dtype == np.uint8 and np.asarray(written["probabilities"]).std() > 10
    plain = tmp_path / "plain.zarr"
    zarr.open_array(str(plain), mode="w", shape=pages.shape, chunks=(1, 512, 512), dtype=np.uint8)[:] = pages
    assert run("volume", plain, "-o", tmp_path / "plain.ome.zarr", "--workers", "1").returncode == 0
    np.testing.assert_array_equal(arrays(tmp_path / "plain.ome.zarr")["labels/membrane/0"],
                                  np.asarray(written["labels/membrane/0"]))


@pytest.fixture(scope="module")
def vnc_stack(data_root, tmp_path_factory) -> Path:
    pages = np.stack([tifffile.imread(data_root / "vnc-stack2" / f"0{i}.tif") for i in range(4)])
    stack = tmp_path_factory.mktemp("vnc") / "vnc.tif"
    tifffile.imwrite(stack, pages, imagej=True, metadata={"axes": "ZYX"}, byteorder=">")
    return stack


@pytest.fixture(scope="module")
def vnc_result(vnc_stack, tmp_path_factory) -> Path:
    """vnc-stack2 in 400-px blocks: 3 x 3 blocks a section, a seam through every few cells."""
    out = tmp_path_factory.mktemp("vnc-out") / "vnc.ome.zarr"
    result = run("volume", vnc_stack, "-o", out, "--block", "400", "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert "36 block(s)" in result.stderr and "region ids joined across 36 block(s)" in result.stderr
    return out


def test_tiff_stack_in_blocks_equals_segment_in_blocks(vnc_stack, vnc_result, tmp_path):
    """Membranes as segment's; region ids seamless, as segment --regions gives them (up to names)."""
    segmented = run("segment", vnc_stack, "-o", tmp_path / "seg", "--block", "400", "--regions", "-q")
    assert segmented.returncode == 0, segmented.stderr
    written = arrays(vnc_result)
    np.testing.assert_array_equal(written["labels/membrane/0"] == 1,
                                  tifffile.imread(tmp_path / "seg" / "vnc_mask.tif") == 0)
    expected = tifffile.imread(tmp_path / "seg" / "vnc_regions.tif")
    regions = written["labels/regions/0"]
    for z in range(4):
        pairs = np.unique(np.stack([regions[z].ravel(), expected[z].ravel()]), axis=1).shape[1]
        assert pairs == np.unique(regions[z]).size == np.unique(expected[z]).size > 400, f"section {z}"
    assert zarr.open_group(str(vnc_result), mode="r")["stitched"][...].all()


def test_a_kill_while_joining_ids_resumes_to_the_same_arrays(vnc_stack, vnc_result, tmp_path):
    """Blocks rewritten but not yet marked stitched (a kill between the two) are rewritten again on
    --resume: a no-op, since every id already is its region's root."""
    out = tmp_path / "copy.ome.zarr"
    shutil.copytree(vnc_result, out)
    group = zarr.open_group(str(out), mode="r+")
    group["stitched"][1:3] = 0
    resumed = run("volume", vnc_stack, "-o", out, "--block", "400", "--resume", "--workers", "1")
    assert resumed.returncode == 0, resumed.stderr
    assert "(36 already done)" in resumed.stderr and "joined across 18 block(s)" in resumed.stderr
    for name, values in arrays(out).items():
        np.testing.assert_array_equal(values, arrays(vnc_result)[name], err_msg=name)


def test_kill_minus_nine_in_blocks_then_resume_gives_identical_ids(vnc_stack, vnc_result, tmp_path):
    out = tmp_path / "killed.ome.zarr"
    kill_mid_run(["volume", str(vnc_stack), "-o", str(out), "--block", "400", "--workers", "1"], out, 6)
    assert 0 < arrays(out)["done"].sum() < 36, "the kill must land mid-run"
    resumed = run("volume", vnc_stack, "-o", out, "--block", "400", "--resume", "--workers", "2")
    assert resumed.returncode == 0, resumed.stderr
    for name, values in arrays(out).items():
        np.testing.assert_array_equal(values, arrays(vnc_result)[name], err_msg=name)


def kill_mid_run(args: list[str], out: Path, blocks_done: int) -> None:
    """Start ``emseg-lite ARGS`` and SIGKILL its process group once ``blocks_done`` blocks are marked done."""
    process = subprocess.Popen([CLI, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = out / "done"
        if done.exists() and len([p for p in done.rglob("*") if p.is_file() and not p.name.startswith(".")]) >= \
                blocks_done:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_kill_minus_nine_then_resume_gives_identical_arrays(isbi_folder, isbi_result, tmp_path):
    out = tmp_path / "killed.ome.zarr"
    kill_mid_run(["volume", str(isbi_folder), "-o", str(out), "--workers", "1"], out, 2)
    partial = arrays(out)["done"]
    assert 0 < partial.sum() < SECTIONS, "the kill must land mid-run"
    refused = run("volume", isbi_folder, "-o", out)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    resumed = run("volume", isbi_folder, "-o", out, "--resume", "--workers", "1")
    assert resumed.returncode == 0, resumed.stderr
    assert f"({int(partial.sum())} already done)" in resumed.stderr
    complete = arrays(isbi_result[0])
    for name, values in arrays(out).items():
        np.testing.assert_array_equal(values, complete[name], err_msg=name)


def test_resume_refuses_another_layout_in_one_line(isbi_folder, isbi_result):
    out, _ = isbi_result
    result = run("volume", isbi_folder, "-o", out, "--resume", "--block", "256")
    assert result.returncode == 2
    assert result.stderr.count("error:") == 1 and "cannot resume" in result.stderr and "block" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_corrupt_chunk_is_reported_by_position_and_the_rest_completes(isbi, tmp_path):
    pages = np.stack([np.asarray(Image.open(isbi / "test" / f"{i}.png")) for i in range(3)])
    source = tmp_path / "broken.zarr"
    array = zarr.open_array(str(source), mode="w", shape=pages.shape, chunks=(1, 512, 512), dtype=np.uint8)
    array[:] = pages
    (source / "c" / "1" / "0" / "0").write_bytes(b"not a compressed chunk")  # zarr v3 chunk key
    out = tmp_path / "out.ome.zarr"
    result = run("volume", source, "-o", out, "--workers", "1")
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "section 1, block row 0, column 0" in errors[0]
    assert arrays(out)["done"][:, 0, 0].tolist() == [1, 0, 1]


def test_without_the_volume_extra_one_line_says_how_to_get_it(isbi_folder, tmp_path):
    code = ("import sys\nsys.modules['distributed'] = None\nsys.argv = ['emseg-lite', 'volume', sys.argv[1], '-o', "
            "sys.argv[2]]\nfrom emseg_lite.runtime.cli import main\nmain()")
    result = subprocess.run([sys.executable, "-c", code, str(isbi_folder), str(tmp_path / "o.ome.zarr")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and 'pip install "emseg-lite[volume]"' in result.stderr
    assert "Traceback" not in result.stderr


def test_an_existing_scheduler_runs_the_same_job(isbi_folder, isbi_result, tmp_path):
    """--scheduler: the code path of a SLURM or Kubernetes cluster, here a LocalCluster of this test."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        out = tmp_path / "remote.ome.zarr"
        result = run("volume", isbi_folder, "-o", out, "--scheduler", cluster.scheduler_address)
        assert result.returncode == 0, result.stderr
    for name, values in arrays(out).items():
        np.testing.assert_array_equal(values, arrays(isbi_result[0])[name], err_msg=name)
