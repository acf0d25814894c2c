"""`emseg-lite watch` beside a simulated microscope: sections written in chunks with pauses,
a growing MRC stack, kill -9 and restart, and the inputs that must not stop it."""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import tifffile
from PIL import Image

CLI = str(Path(sys.executable).parent / "emseg-lite")
FAST = ["--interval", "0.1", "--settle", "0.4"]


def start_watch(inbox: Path, out: Path, *extra) -> subprocess.Popen:
    return subprocess.Popen([CLI, "watch", str(inbox), "-o", str(out), *FAST, *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for(condition, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def write_slowly(path: Path, payload: bytes, chunks: int = 5, pause: float = 0.25) -> None:
    """As an acquisition PC writes over a share: the file exists, grows, pauses, completes."""
    with open(path, "wb") as fh:
        for i in range(chunks):
            fh.write(payload[i * len(payload) // chunks : (i + 1) * len(payload) // chunks])
            fh.flush()
            time.sleep(pause)


def masks(out: Path) -> list[str]:
    if not out.exists():
        return []
    return sorted(p.name for p in out.iterdir() if p.name.endswith(("_mask.png", "_mask.tif")))


def test_sections_written_in_chunks_are_each_segmented_once_and_whole(isbi, vnc_tiff, tmp_path):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    (inbox / "0.png").write_bytes((isbi / "test" / "0.png").read_bytes())  # there before the watch starts
    watch = start_watch(inbox, out, "--log-json", str(tmp_path / "log.jsonl"))
    sources = {"1.png": isbi / "test" / "1.png", "2.png": isbi / "test" / "2.png", "vnc.tif": vnc_tiff}
    microscope = threading.Thread(target=lambda: [write_slowly(inbox / name, src.read_bytes())
                                                  for name, src in sources.items()])
    microscope.start()
    microscope.join()
    wait_for(lambda: len(masks(out)) == 4)
    time.sleep(1.0)  # more polls: nothing is done twice
    os.killpg(watch.pid, signal.SIGTERM)
    stdout, stderr = watch.communicate(timeout=60)
    assert watch.returncode == 0, stderr
    assert masks(out) == ["0_mask.png", "1_mask.png", "2_mask.png", "vnc_mask.png"]
    lines = [line for line in stdout.splitlines() if " -> " in line]
    assert len(lines) == 4 and all("regions" in line for line in lines), stdout
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert sorted(Path(r["output"]).name for r in records) == masks(out)
    reference = subprocess.run([CLI, "segment", str(inbox), "-o", str(tmp_path / "ref"), "-q"], capture_output=True)
    assert reference.returncode == 0
    for name in masks(out):
        np.testing.assert_array_equal(np.asarray(Image.open(out / name)), np.asarray(Image.open(tmp_path / "ref" / name)))


def test_a_growing_mrc_stack_gets_only_its_new_sections(data_root, tmp_path):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    pages = np.stack([tifffile.imread(data_root / "vnc-stack2" / f"0{i}.tif") for i in range(3)])
    stack = inbox / "acquisition.mrc"
    watch = start_watch(inbox, out)
    written = {}
    for count in (1, 2, 3):  # SerialEM appends a section, then updates the header
        with mrcfile.new(stack, overwrite=True) if count == 1 else mrcfile.open(stack, mode="r+") as mrc:
            mrc.set_data(pages[:count])
            mrc.voxel_size = 46.0
        wait_for(lambda: len(masks(out)) == count)
        written.update({name: (out / name).stat().st_mtime_ns for name in masks(out) if name not in written})
    time.sleep(1.0)
    os.killpg(watch.pid, signal.SIGTERM)
    watch.communicate(timeout=60)
    assert masks(out) == [f"acquisition_z000{i}_mask.png" for i in range(3)]
    assert {name: (out / name).stat().st_mtime_ns for name in masks(out)} == written  # none rewritten
    with Image.open(out / "acquisition_z0001_mask.png") as mask:
        assert mask.info["dpi"][0] == pytest.approx(2.54e7 / 4.6, rel=1e-3)


def test_kill_minus_nine_and_restart_finishes_without_redoing(isbi, tmp_path):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    for i in range(12):
        shutil.copy(isbi / "test" / f"{i}.png", inbox / f"{i}.png")
    old = time.time() - 60
    for path in inbox.iterdir():
        os.utime(path, (old, old))
    watch = start_watch(inbox, out)
    wait_for(lambda: len(masks(out)) >= 3)
    os.killpg(watch.pid, signal.SIGKILL)
    watch.wait()
    before = {name: (out / name).stat().st_mtime_ns for name in masks(out)}
    again = subprocess.run([CLI, "watch", str(inbox), "-o", str(out), "--once", *FAST], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert masks(out) == sorted(f"{i}_mask.png" for i in range(12))
    assert all((out / name).stat().st_mtime_ns == stamp for name, stamp in before.items())
    assert len([line for line in again.stdout.splitlines() if " -> " in line]) == 12 - len(before)
    assert not [p for p in out.iterdir() if ".tmp" in p.name]


def test_bad_inputs_are_reported_once_and_the_rest_goes_on(isbi, tmp_path):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    os.mkfifo(inbox / "pipe.png")
    (inbox / "loop.tif").symlink_to(inbox / "loop.tif")
    (inbox / "broken.png").write_bytes((isbi / "test" / "3.png").read_bytes()[:5000])
    tifffile.imwrite(inbox / "nan.tif", np.full((32, 32), np.nan, np.float32))
    shutil.copy(isbi / "test" / "4.png", inbox / "good.png")
    old = time.time() - 60
    for path in (inbox / "broken.png", inbox / "nan.tif", inbox / "good.png"):
        os.utime(path, (old, old))
    watch = start_watch(inbox, out)
    wait_for(lambda: masks(out) == ["good_mask.png"])
    time.sleep(1.5)  # many more polls
    os.killpg(watch.pid, signal.SIGTERM)
    stdout, stderr = watch.communicate(timeout=60)
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert sorted(e.split(": ")[1].split("/")[-1] for e in errors) == ["broken.png", "loop.tif", "nan.tif",
                                                                       "pipe.png"], stderr
    assert "Traceback" not in stderr


def test_a_file_that_looks_settled_before_its_bytes_arrive_is_waited_for_quietly(isbi, tmp_path):
    """Some shares reserve a file's size, and keep its time, until the writer closes it: the
    file looks settled before it decodes. It gets its mask once it does, and no error."""
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    payload = (isbi / "test" / "6.png").read_bytes()
    late = inbox / "late.png"
    late.write_bytes(bytes(len(payload)))  # the size reserved, none of the image yet
    old = time.time() - 60
    os.utime(late, (old, old))
    watch = subprocess.Popen([CLI, "watch", str(inbox), "-o", str(out), "--interval", "0.1", "--settle", "2"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert watch.stderr.readline().startswith("watching")  # the first poll follows
    time.sleep(3)  # settled after 2 s and tried, not yet reported (that waits 2 s more)
    late.write_bytes(payload)
    os.utime(late, (old, old))
    wait_for(lambda: masks(out) == ["late_mask.png"], 60)
    os.killpg(watch.pid, signal.SIGTERM)
    stdout, stderr = watch.communicate(timeout=60)
    assert "error" not in stderr, stderr
    assert "late.png -> late_mask.png" in stdout


def test_once_leaves_a_file_still_being_written_for_the_next_run(isbi, tmp_path):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    shutil.copy(isbi / "test" / "5.png", inbox / "fresh.png")  # modified just now: not settled
    first = subprocess.run([CLI, "watch", str(inbox), "-o", str(out), "--once", "--settle", "30"], capture_output=True)
    assert first.returncode == 0 and masks(out) == []
    old = time.time() - 60
    os.utime(inbox / "fresh.png", (old, old))
    second = subprocess.run([CLI, "watch", str(inbox), "-o", str(out), "--once", "--settle", "30"], capture_output=True)
    assert second.returncode == 0 and masks(out) == ["fresh_mask.png"]


def test_a_growing_tiff_stack_gets_only_its_new_sections(isbi, tmp_path):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    pages = [np.asarray(Image.open(isbi / "test" / f"{i}.png")) for i in range(3)]
    stack = inbox / "tiles.tif"
    # a plain multi-page TIFF, as acquisition software appends to one (no ImageJ or tifffile metadata)
    tifffile.imwrite(stack, np.stack(pages[:2]), photometric="minisblack", metadata=None)
    old = time.time() - 60
    os.utime(stack, (old, old))
    first = subprocess.run([CLI, "watch", str(inbox), "-o", str(out), "--once", *FAST], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert masks(out) == ["tiles_z0000_mask.png", "tiles_z0001_mask.png"]
    stamps = {name: (out / name).stat().st_mtime_ns for name in masks(out)}
    tifffile.imwrite(stack, pages[2], append=True, photometric="minisblack", metadata=None)  # a page more
    os.utime(stack, (old + 1, old + 1))
    second = subprocess.run([CLI, "watch", str(inbox), "-o", str(out), "--once", *FAST], capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert masks(out) == [f"tiles_z000{i}_mask.png" for i in range(3)]
    assert all((out / name).stat().st_mtime_ns == stamp for name, stamp in stamps.items())
    assert [line.split(" -> ")[0] for line in second.stdout.splitlines() if " -> " in line] == ["tiles.tif[2]"]


def test_a_restart_with_other_settings_is_refused_not_mixed(isbi, tmp_path):
    """The outputs are the state, so a restart that would make its masks another way (here
    ``--post none``, then ``--resample``) must not add them beside the first run's."""
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    shutil.copy(isbi / "test" / "6.png", inbox / "a.png")
    once = [CLI, "watch", str(inbox), "-o", str(out), "--once", "--settle", "0", "-q"]
    assert subprocess.run(once, capture_output=True).returncode == 0
    first = (out / "a_mask.png").read_bytes()
    shutil.copy(isbi / "test" / "7.png", inbox / "b.png")
    for extra, named in ((["--post", "none"], "post-processing"), (["--resample", "--pixel-size-nm", "8"], "--resample")):
        refused = subprocess.run(once + extra, capture_output=True, text=True)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.count("\n") == 1 and named in refused.stderr and "Traceback" not in refused.stderr
        assert masks(out) == ["a_mask.png"] and (out / "a_mask.png").read_bytes() == first
    again = subprocess.run(once + ["--block", "256"], capture_output=True, text=True)  # the block changes no mask
    assert again.returncode == 0, again.stderr
    assert masks(out) == ["a_mask.png", "b_mask.png"]
