"""The runtime's layers stay as CONTRIBUTING.md draws them.

The rules themselves are import-linter contracts in pyproject.toml: each layer
(core < formats < engine < post < pipelines < cli | napari) imports only the
ones below it, no package has an import circle among its modules, and the runtime never
imports emseg_lite.train, emseg_lite.export or TensorFlow. Lazy imports inside
functions count, as they are arrows all the same.

import-linter comes with the full development install (the test extra).
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from conftest import REPO, missing

RUNTIME = REPO / "runtime"
LAYERS = ("core", "formats", "engine", "post", "pipelines", "cli", "napari")
MAX_MODULE_LINES = 300


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        missing("import-linter is not installed (the test extra brings it)")
    result = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "4 kept, 0 broken" in result.stdout, result.stdout[-2000:]


def test_every_module_lives_in_a_layer_and_says_what_it_holds():
    loose = sorted(p.name for p in RUNTIME.glob("*.py") if p.name != "__init__.py")
    assert loose == [], f"modules outside the layers: {loose}"
    packages = sorted(p.parent.name for p in RUNTIME.glob("*/__init__.py"))
    assert packages == sorted(LAYERS)
    for layer in LAYERS:
        for path in (RUNTIME / layer).glob("*.py"):
            assert ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))), f"{path} has no docstring"
        doc = ast.get_docstring(ast.parse((RUNTIME / layer / "__init__.py").read_text(encoding="utf-8")))
        assert "May import:" in doc, f"runtime/{layer}/__init__.py does not say what it may import"


def test_no_module_is_too_long_to_read():
    long = {str(p.relative_to(REPO)): n for p in RUNTIME.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert long == {}, f"modules over {MAX_MODULE_LINES} lines: {long}"
