"""`emseg-lite segment` on one big section, end to end: megapixels per second, the
watershed's cost against ``--post none`` in the same run, and peak memory.

Sides come from ``EMSEG_BIG_SIDES`` (default 6144, a few seconds; ``make
bench-big`` runs 20000 and 30000). Each run is a fresh CLI process on a mosaic
of real sections (``mosaic``) as an uncompressed TIFF; the child reports its
own peak resident memory (VmHWM), which includes what it maps of the input.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from .mosaic import write_mosaic
from .test_latency import _CLI_WITH_PEAK

SIDES = [int(s) for s in os.environ.get("EMSEG_BIG_SIDES", "6144").split(",")]
_SECONDS: dict[tuple[int, str], float] = {}


@pytest.fixture(scope="module")
def sections(data_root, tmp_path_factory):
    folder = tmp_path_factory.mktemp("big")
    return {side: write_mosaic(data_root, side, folder / f"mosaic{side}.tif") for side in SIDES}


@pytest.mark.parametrize("post", ["none", "watershed"])
@pytest.mark.parametrize("side", SIDES)
def test_big_section(benchmark, record, sections, side, post, tmp_path):
    path = sections[side]
    peaks = []

    def segment():
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", _CLI_WITH_PEAK, "segment", str(path), "-o", str(tmp_path),
                                 "--post", post, "--overwrite", "-q"], capture_output=True, text=True)
        _SECONDS[side, post] = time.perf_counter() - start
        assert result.returncode == 0, result.stderr
        peaks.append(int(result.stderr.split("PEAK_KB")[1].split()[0]) / 1024)

    benchmark.pedantic(segment, rounds=1, iterations=1)
    seconds = _SECONDS[side, post]
    info = dict(origin="embedded", variant=f"int8, post {post}", threads="default", side=side,
                megapixels_per_s=round(side * side / seconds / 1e6, 2), peak_rss_mb=round(max(peaks)))
    if post == "watershed" and (side, "none") in _SECONDS:
        info["ratio_to_post_none"] = round(seconds / _SECONDS[side, "none"], 3)
    record(**info)
    print(f"\n{side} x {side}, post {post}: {seconds:.1f} s, {info['megapixels_per_s']} MP/s, "
          f"peak {info['peak_rss_mb']} MB" + (f", {info['ratio_to_post_none']} x post none"
                                               if "ratio_to_post_none" in info else ""))
