"""Every command in README.md, CONTRIBUTING.md and docs/*.md is run or checked, so none goes stale.

Commands live in ```bash blocks, one a line; Python examples in ```python blocks.

* ``emseg-lite ...`` runs in a scratch folder holding real ISBI 2012 sections under
  the names the docs use (``slice.png``, ``stack.tif``, ``sections/``, ``big.tif``,
  ``inbox/``) and must exit 0. The lines of one block share a folder, in order. Those
  that cannot run here -- ``watch`` without ``--once`` (it runs until Ctrl-C), a
  ``--scheduler`` address, absolute paths of a lab's machines -- are parsed by the CLI
  itself, so a renamed option or a wrong choice still fails.
* ``make TARGET`` is dry-run (``make -n``): the target exists and its recipe expands.
* ``pip install ...`` names extras that pyproject.toml defines.
* ``pytest ...`` collects what it names (``--collect-only``).
* ```python blocks run in a scratch folder.

The documented commands need the full development install (every extra, make).
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from conftest import REPO
from PIL import Image

DOCS = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
ENV_PREFIX = re.compile(r"^(\w+=\S*\s+)+")
NOT_HERE = re.compile(r"--scheduler|(?:^|\s)/(?:mnt|scratch|data|srv|home)/")


def _blocks(kind: str) -> list[tuple[str, list[str]]]:
    """(where, lines) of every ``kind`` block: ``README.md:31`` and its lines without comments."""
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if match[1] != kind:
                continue
            line = text.count("\n", 0, match.start()) + 1
            where = f"{doc.relative_to(REPO)}:{line}"
            if kind == "python":
                found.append((where, [match[2]]))
                continue
            commands = [re.sub(r"\s+#.*$", "", raw).strip() for raw in match[2].replace("\\\n", " ").splitlines()]
            found.append((where, [c for c in commands if c and not c.startswith("#")]))
    return found


def _commands(tool: str) -> list[tuple[str, str]]:
    return [(where, c) for where, lines in _blocks("bash") for c in lines if _tool(c) == tool]


def _tool(command: str) -> str:
    return shlex.split(ENV_PREFIX.sub("", command))[0]


def test_every_documented_command_is_of_a_kind_this_module_checks():
    kinds = {_tool(c) for _, lines in _blocks("bash") for c in lines}
    assert kinds <= {"emseg-lite", "make", "pip", "pytest"}, kinds


@pytest.fixture(scope="module")
def inputs(isbi, tmp_path_factory) -> Path:
    """The docs' example inputs, made of real ISBI 2012 sections."""
    folder = tmp_path_factory.mktemp("docs-inputs")
    test = isbi / "test"
    shutil.copy(test / "0.png", folder / "slice.png")
    pages = [np.asarray(Image.open(test / f"{i}.png")) for i in range(3)]
    tifffile.imwrite(folder / "stack.tif", np.stack(pages), photometric="minisblack")
    for name in ("sections", "inbox"):
        (folder / name).mkdir()
    for i in range(3):
        shutil.copy(test / f"{i + 3}.png", folder / "sections" / f"{i}.png")
    for i in range(2):
        shutil.copy(test / f"{i + 6}.png", folder / "inbox" / f"{i}.png")
        old = time.time() - 600
        os.utime(folder / "inbox" / f"{i}.png", (old, old))
    tiles = [np.asarray(Image.open(test / f"{i % 30}.png")) for i in range(100)]
    mosaic = np.block([[tiles[10 * r + c] for c in range(10)] for r in range(10)])[:5000, :5000]
    tifffile.imwrite(folder / "big.tif", mosaic, tile=(512, 512), photometric="minisblack")
    return folder


def _scratch(inputs: Path, tmp_path: Path) -> Path:
    work = tmp_path / "work"
    shutil.copytree(inputs, work, ignore=shutil.ignore_patterns("big.tif"))
    (work / "big.tif").symlink_to(inputs / "big.tif")
    return work


def _env(data_root: Path) -> dict[str, str]:
    return {**os.environ, "EMSEG_DATA": str(data_root), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.parametrize("where,lines", [b for b in _blocks("bash") if any(_tool(c) == "emseg-lite" for c in b[1])],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_emseg_lite_commands_run(where, lines, inputs, data_root, tmp_path):
    work = _scratch(inputs, tmp_path)
    for command in (c for c in lines if _tool(c) == "emseg-lite"):
        if NOT_HERE.search(command) or (" watch " in f" {command} " and "--once" not in command):
            _parse(where, os.path.expandvars(command))
            continue
        result = subprocess.run(["bash", "-c", command], cwd=work, env=_env(data_root), capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, f"{where}: {command}\n{result.stderr[-3000:]}"


def _parse(where: str, command: str) -> None:
    """The CLI's own parser over the command's options, without running it."""
    import click
    from typer.main import get_command

    from emseg_lite.runtime.cli import app

    group = get_command(app)
    args = shlex.split(command)[1:]
    name, rest = args[0], args[1:]
    sub = group.get_command(click.Context(group), name)
    assert sub is not None, f"{where}: no command {name!r}"
    try:
        sub.make_context(name, rest)
    except click.UsageError as exc:
        pytest.fail(f"{where}: {command}: {exc.format_message()}")


@pytest.mark.parametrize("where,command", _commands("make"), ids=lambda v: v)
def test_make_commands_expand(where, command):
    args = shlex.split(ENV_PREFIX.sub("", command))
    result = subprocess.run(["make", "-n", *args[1:]], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{where}: {command}\n{result.stderr[-2000:]}"


@pytest.mark.parametrize("where,command", _commands("pip"), ids=lambda v: v)
def test_pip_commands_name_real_extras(where, command):
    extras = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    named = {e.strip() for group in re.findall(r"\[([^\]]*)\]", command) for e in group.split(",")}
    assert named <= extras, f"{where}: {command} names extras {named - extras} that pyproject.toml lacks"
    assert re.search(r"pip install (-e )?\S*\.\S*", command), f"{where}: {command} does not install this project"


@pytest.mark.parametrize("where,command", _commands("pytest"), ids=lambda v: v)
def test_pytest_commands_collect(where, command):
    args = shlex.split(ENV_PREFIX.sub("", command))[1:]
    result = subprocess.run([sys.executable, "-m", "pytest", *args, "--collect-only", "-q", "-p", "no:cacheprovider"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{where}: {command}\n{result.stdout[-2000:]}{result.stderr[-1000:]}"


@pytest.mark.parametrize("where,lines", _blocks("python"), ids=lambda v: v if isinstance(v, str) else "")
def test_python_examples_run(where, lines, inputs, data_root, tmp_path):
    work = _scratch(inputs, tmp_path)
    result = subprocess.run([sys.executable, "-c", lines[0]], cwd=work, env=_env(data_root), capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, f"{where}\n{result.stderr[-3000:]}"
