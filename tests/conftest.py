"""Shared fixtures: the real EM data (via EMSEG_DATA) and a quick trained+exported model.

Tests that need real data fail loudly when ``CI`` is set and the data is
missing, and are skipped otherwise, so a laptop without the data can still run
the unit tests.

``pytest --runtime-only`` runs the slim runtime's tests alone, in an environment
without TensorFlow (``make check-litert-min``): modules that use the train or
export layer, the quick model built with them, or the volume and formats
extras, are not collected.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[1]
_TRAINING_STACK = ("emseg_lite.train", "emseg_lite.export", "quick_run", "quick_models",
                   "import zarr", "import mrcfile", "the full development install")
"""What --runtime-only leaves out: the training stack, the volume and formats extras, and
modules that say they need the full development install (their tests run in .venv; the
oldest-LiteRT environment checks the interpreter)."""


def pytest_addoption(parser):
    parser.addoption("--runtime-only", action="store_true",
                     help="Only the slim runtime's tests: skip modules that need TensorFlow (train/export).")


def pytest_ignore_collect(collection_path, config):
    if not config.getoption("--runtime-only") or collection_path.suffix != ".py":
        return None
    if not collection_path.name.startswith("test_"):
        return None
    text = collection_path.read_text(encoding="utf-8")
    return True if any(name in text for name in _TRAINING_STACK) else None


def missing(message: str) -> NoReturn:
    """What a test needs is absent: a failure under CI, which must have everything, else a skip."""
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _data_root() -> Path:
    value = os.environ.get("EMSEG_DATA")
    root = Path(value) if value else None
    if root is not None and not root.is_absolute():
        root = (Path.cwd() / root).resolve()
    if root is None or not (root / "isbi2012").is_dir():
        missing(f"real EM data not found (EMSEG_DATA={value!r}; expected a folder holding isbi2012/ and vnc-stack2/)")
    return root


@pytest.fixture(scope="session")
def data_root() -> Path:
    return _data_root()


@pytest.fixture(scope="session")
def isbi(data_root) -> Path:
    return data_root / "isbi2012"


@pytest.fixture(scope="session")
def vnc_tiff(data_root) -> Path:
    return data_root / "vnc-stack2" / "00.tif"


@pytest.fixture(scope="session")
def test_slice(isbi) -> Path:
    return isbi / "test" / "0.png"


@pytest.fixture(scope="session")
def quick_run(isbi, tmp_path_factory) -> Path:
    """A --quick training run on real ISBI data (seconds of training: proves the pipeline)."""
    out = tmp_path_factory.mktemp("runs") / "quick"
    subprocess.run([sys.executable, "-m", "emseg_lite.train", "--data", str(isbi), "--out", str(out), "--quick"],
                   check=True, cwd=REPO, capture_output=True)
    return out


@pytest.fixture(scope="session")
def quick_models(quick_run, tmp_path_factory) -> Path:
    """All TFLite variants of the quick run. The agreement floor is 0: a few training steps
    do not make a model stable enough under int8 to gate it."""
    out = tmp_path_factory.mktemp("models")
    subprocess.run([sys.executable, "-m", "emseg_lite.export", str(quick_run), "--out", str(out),
                    "--min-agreement", "0"], check=True, cwd=REPO, capture_output=True)
    return out
