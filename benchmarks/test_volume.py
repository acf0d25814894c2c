"""`emseg-lite volume` against `emseg-lite segment` on the same stack: throughput per
pixel with 1 and 2 Dask workers, peak memory per worker, and what that means for
a connectome-sized volume.

The stack: ``EMSEG_VOLUME_SECTIONS`` (default 6) sections of 4096 x 4096 px,
each a different mosaic of real vnc-stack2 sections (``mosaic``), as a TIFF stack.
"""
from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from .mosaic import TILE, band, variants

SECTIONS = int(os.environ.get("EMSEG_VOLUME_SECTIONS", "6"))
ROUNDS = int(os.environ.get("EMSEG_VOLUME_ROUNDS", "1"))
SIDE = 4 * TILE
CLI = str(Path(sys.executable).parent / "emseg-lite")


@pytest.fixture(scope="module")
def stack(data_root, tmp_path_factory):
    import tifffile

    parts = variants(data_root)
    path = tmp_path_factory.mktemp("volume") / "stack.tif"
    pages = (np.concatenate([band(parts[z:] + parts[:z], row, SIDE) for row in range(4)]) for z in range(SECTIONS))
    tifffile.imwrite(path, data=pages, shape=(SECTIONS, SIDE, SIDE), dtype=np.uint8, imagej=True,
                     metadata={"axes": "ZYX"})
    return path


def _timed(args: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run([CLI, *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return time.perf_counter() - start, result.stderr


def _working(stderr: str) -> float:
    """Seconds from the first block to the last, from the tool's own summary: without process
    and cluster start-up or the workers' warm-up (model load; a few seconds, whatever the
    volume's size), which are reported beside it."""
    return float(re.search(r"(?:file\(s\)|megapixels) in ([0-9.]+) s", stderr).group(1))


@pytest.mark.parametrize("how", ["segment", "volume-1-worker", "volume-2-workers"])
def test_volume_throughput(benchmark, record, stack, tmp_path, how):
    """Each volume round is paired with a `segment` run just before it (``EMSEG_VOLUME_ROUNDS``
    rounds): the ratio is the median of the pairs', so a machine that speeds up or slows
    down between runs moves both sides of a pair."""
    segment = ["segment", str(stack), "-o", str(tmp_path), "--overwrite"]
    if how == "segment":
        args = segment
    else:
        workers = how.split("-")[1]
        args = ["volume", str(stack), "-o", str(tmp_path / "out.ome.zarr"), "--workers", workers, "--overwrite"]
    runs, paired = [], []

    def run():
        runs.append(_timed(args))

    def segment_first():
        paired.append(_working(_timed(segment)[1]))

    benchmark.pedantic(run, setup=None if how == "segment" else segment_first, rounds=ROUNDS, iterations=1)
    megapixels = SECTIONS * SIDE * SIDE / 1e6
    working = statistics.median(_working(stderr) for _, stderr in runs)
    stderr = runs[-1][1]
    info = dict(origin="embedded", variant=f"int8, {how}", threads="default", sections=SECTIONS, side=SIDE,
                rounds=ROUNDS, megapixels_per_s=round(megapixels / working, 2),
                wall_s=round(statistics.median(s for s, _ in runs), 1))
    warm_up = re.search(r"ready in ([0-9.]+) s", stderr)
    if warm_up:
        info["worker_warm_up_s"] = float(warm_up.group(1))
    peak = re.search(r"peak RSS per worker (\d+) MB", stderr)
    if peak:
        info["peak_rss_mb_per_worker"] = int(peak.group(1))
    if paired:
        info["throughput_vs_segment"] = round(statistics.median(
            s / _working(e) for s, (_, e) in zip(paired, runs)), 3)
    if how == "volume-2-workers":
        # 10^4 sections of 20000 x 20000 px (4 x 10^6 megapixels) on one node of 32 cores, one worker per
        # core at the rate each of two workers reached here: divide by the number of nodes.
        per_worker = info["megapixels_per_s"] / 2
        info["hours_on_one_32_core_node"] = round(1e4 * 400 / (per_worker * 32) / 3600, 1)
    record(**info)
    print(f"\n{how}: {working:.1f} s working, {info['wall_s']:.1f} s in all, {info['megapixels_per_s']} MP/s"
          + (f", {info['throughput_vs_segment']:.2f} x segment's throughput (paired)"
             if "throughput_vs_segment" in info else "")
          + (f", peak {info['peak_rss_mb_per_worker']} MB per worker" if "peak_rss_mb_per_worker" in info else ""))
