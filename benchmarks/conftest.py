"""Fixtures for the benchmarks: real slices, model sets, the machine's matmul peak,
and a closing table of latency and agreement per variant."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from .subjects import embedded_set, exported_set

VALIDATION_SECTION = 27
"""One 512 x 512 ISBI section held out from training (25-29), with labels."""
_ROWS: list[dict] = []


def _data_root() -> Path:
    value = os.environ.get("EMSEG_DATA")
    if not value or not (Path(value) / "isbi2012").is_dir():
        message = f"benchmarks need the real EM data (EMSEG_DATA={value!r})"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return Path(value)


@pytest.fixture(scope="session")
def data_root() -> Path:
    return _data_root()


@pytest.fixture(scope="session")
def isbi_slice(data_root):
    """(image uint8, membrane bool) of one held-out 512 x 512 section."""
    from emseg_lite.runtime.pipelines.datasets import load_labeled, locate

    volume = load_labeled(*locate(data_root)).select([VALIDATION_SECTION])
    return volume.images[0], volume.membrane[0]


@pytest.fixture(scope="session")
def vnc_path(data_root) -> Path:
    return data_root / "vnc-stack2" / "00.tif"


@pytest.fixture(scope="session")
def exported(tmp_path_factory, data_root):
    return exported_set(tmp_path_factory.mktemp("bench"))


@pytest.fixture(scope="session")
def embedded():
    return embedded_set()


@pytest.fixture(scope="session", autouse=True)
def amx() -> str:
    """Measure the runtime as the CLI runs it: XNNPACK kept off AMX (runtime/engine/amx.py)."""
    from emseg_lite.runtime.engine.amx import forgo_amx

    return forgo_amx()


@pytest.fixture(scope="session")
def machine_gflops() -> float:
    """fp32 matrix-multiply GFLOP/s of this machine (numpy BLAS, all cores), best of 5."""
    a = np.random.default_rng(0).random((1536, 1536), dtype=np.float32)
    b = a.T.copy()
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(5))
    return 2 * 1536**3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@pytest.fixture
def record(benchmark, machine_gflops, amx):
    """Attach figures to the benchmark and to the closing summary table."""
    def _record(**info):
        info["machine_gflops"] = round(machine_gflops, 1)
        info["amx"] = amx
        benchmark.extra_info.update(info)
        _ROWS.append({"name": benchmark.name, "benchmark": benchmark, **info})
    return _record


def pytest_terminal_summary(terminalreporter):
    if not _ROWS:
        return
    write = terminalreporter.write_line
    write("")
    write("emseg-lite: latency and agreement with the full model (median over rounds)")
    write(f"{'benchmark':<44}{'median ms':>10}{'agree %':>9}{'Dice':>8}{'dV_rand':>9}{'GFLOP/s':>9}{'% peak':>8}")
    for row in _ROWS:
        stats = getattr(row["benchmark"], "stats", None)
        if not stats:
            continue
        median = stats.stats.median
        gflops = row.get("flop", 0) / median / 1e9 if row.get("flop") else None
        agree = row.get("pixel_agreement")
        write(f"{row['name']:<44}{1000 * median:>10.1f}"
              + (f"{100 * agree:>9.2f}{row['membrane_dice']:>8.4f}{row['v_rand_diff']:>+9.4f}" if agree is not None else f"{'':>26}")
              + (f"{gflops:>9.1f}{100 * gflops / row['machine_gflops']:>7.0f}%" if gflops else ""))
