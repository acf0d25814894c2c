"""`emseg-lite segment` on one big section, end to end: megapixels per second, the
watershed's cost against ``--post none`` in the same run, and peak memory.

Sides come from ``EMSEG_BIG_SIDES`` (default 6144, a few seconds; ``make
bench-big`` runs 20000 and 30000). Each run is a fresh CLI process on a mosaic
of real sections (``mosaic``) as an uncompressed TIFF; the child reports its
own peak resident memory (VmHWM), which includes what it maps of the input.
``EMSEG_BIG_ACCELERATOR`` (cpu) and ``EMSEG_BIG_MODEL`` (int8) pick what runs: ``make
bench-gpu`` runs float16 and float16-2048 on the GPU.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

import pytest

from .mosaic import write_mosaic
from .test_latency import _CLI_WITH_PEAK

SIDES = [int(s) for s in os.environ.get("EMSEG_BIG_SIDES", "6144").split(",")]
ROUNDS = int(os.environ.get("EMSEG_BIG_ROUNDS", "1"))
ACCELERATOR = os.environ.get("EMSEG_BIG_ACCELERATOR", "cpu")
MODEL = os.environ.get("EMSEG_BIG_MODEL", "int8")


@pytest.fixture(scope="module")
def sections(data_root, tmp_path_factory):
    folder = tmp_path_factory.mktemp("big")
    return {side: write_mosaic(data_root, side, folder / f"mosaic{side}.tif") for side in SIDES}


def _segment(path, post: str, out) -> tuple[float, float]:
    """(seconds, peak RSS MB) of one `emseg-lite segment` process."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", _CLI_WITH_PEAK, "segment", str(path), "-o", str(out),
                             "--post", post, "--overwrite", "-q",
                             "--accelerator", ACCELERATOR, "--model", MODEL], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    return seconds, int(result.stderr.split("PEAK_KB")[1].split()[0]) / 1024


@pytest.mark.parametrize("post", ["none", "watershed"])
@pytest.mark.parametrize("side", SIDES)
def test_big_section(benchmark, record, sections, side, post, tmp_path):
    """With the watershed, each round is paired with a `--post none` run just before it
    (``EMSEG_BIG_ROUNDS`` rounds): the ratio is the median of the pairs' ratios, so a
    machine that speeds up or slows down between runs moves both sides of a pair."""
    path = sections[side]
    runs, paired = [], []

    def segment():
        runs.append(_segment(path, post, tmp_path))

    def run_none_first():
        paired.append(_segment(path, "none", tmp_path)[0])

    benchmark.pedantic(segment, setup=run_none_first if post == "watershed" else None, rounds=ROUNDS, iterations=1)
    seconds = statistics.median(s for s, _ in runs)
    info = dict(origin="embedded", variant=f"{MODEL} on {ACCELERATOR}, post {post}", threads="default", side=side, rounds=ROUNDS,
                megapixels_per_s=round(side * side / seconds / 1e6, 2), peak_rss_mb=round(max(p for _, p in runs)))
    if paired:
        info["ratio_to_post_none"] = round(statistics.median(s / n for (s, _), n in zip(runs, paired)), 3)
        info["paired_post_none_s"] = [round(n, 1) for n in paired]
    record(**info)
    print(f"\n{side} x {side}, {MODEL} on {ACCELERATOR}, post {post}: {seconds:.1f} s, {info['megapixels_per_s']} MP/s, "
          f"peak {info['peak_rss_mb']} MB" + (f", {info['ratio_to_post_none']} x post none (paired)"
                                               if "ratio_to_post_none" in info else ""))
