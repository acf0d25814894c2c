"""Keeping XNNPACK off AMX: the permission is really refused, and results do not change.

Each check runs in a child process, because the refusal is irreversible for the
process that makes it.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from emseg_lite.runtime.formats.reader import read_slices
from emseg_lite.runtime.pipelines.segmenter import Segmenter

CHILD = textwrap.dedent("""
    import ctypes, sys
    import numpy as np
    from emseg_lite.runtime.engine.amx import (forgo_amx, _xcomp, _ARCH_GET_XCOMP_SUPP, _ARCH_REQ_XCOMP_PERM, _SYS_ARCH_PRCTL, _XFEATURE_XTILEDATA)
    from emseg_lite.runtime.formats.reader import read_slices
    from emseg_lite.runtime.pipelines.segmenter import Segmenter

    state = forgo_amx()
    assert forgo_amx() is state, "a second call must change nothing"
    libc = ctypes.CDLL(None, use_errno=True)
    has_amx = bool(_xcomp(libc, _ARCH_GET_XCOMP_SUPP) & _XFEATURE_XTILEDATA)
    request = libc.syscall(_SYS_ARCH_PRCTL, _ARCH_REQ_XCOMP_PERM, _XFEATURE_XTILEDATA.bit_length() - 1) if has_amx else None
    np.save(sys.argv[2], Segmenter.load("int8").probabilities(read_slices(sys.argv[1]).pages[0]))
    print(state, has_amx, request, ctypes.get_errno(), sep="|")
""")


def test_amx_refused_and_int8_results_unchanged(test_slice, tmp_path):
    saved = tmp_path / "probability.npy"
    child = subprocess.run([sys.executable, "-c", CHILD, str(test_slice), str(saved)],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    state, has_amx, request, errno = child.stdout.strip().splitlines()[-1].split("|")
    if has_amx == "True":
        assert state.startswith("refused"), state
        assert (request, errno) == ("-1", "1"), "arch_prctl(ARCH_REQ_XCOMP_PERM) must fail with EPERM"
    else:
        assert state.startswith("not applicable"), state
    here = Segmenter.load("int8").probabilities(read_slices(test_slice).pages[0])
    np.testing.assert_array_equal(np.load(saved), here)


@pytest.mark.parametrize("platform, machine", [("linux", "aarch64"), ("darwin", "arm64"), ("win32", "AMD64"),
                                               ("linux", "armv7l")])
def test_amx_guard_is_a_no_op_where_amx_cannot_exist(platform, machine, monkeypatch):
    # Nothing may be loaded or filtered: the guard must answer before touching libc or seccomp.
    from emseg_lite.runtime.engine import amx

    monkeypatch.setattr(amx.sys, "platform", platform)
    monkeypatch.setattr(amx.os, "uname", lambda: os.uname_result(("Linux", "board", "6.1", "#1", machine)),
                        raising=False)
    monkeypatch.setattr(amx.ctypes, "CDLL", lambda *a, **k: pytest.fail("libc must not be loaded here"))
    assert amx.forgo_amx.__wrapped__() == "not applicable (no AMX on this platform)"
