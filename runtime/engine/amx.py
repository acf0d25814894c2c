"""Keep XNNPACK's int8 kernels off Intel AMX, where they are slower for this model.

On x86 CPUs with AMX (Xeon Sapphire Rapids and later), XNNPACK asks Linux for
permission to use the AMX tile registers when it starts, and if granted runs
int8 convolutions on them. The tiles are built for wide matrices; this model's
layers have 8 to 48 channels. Measured on the 2-core Sapphire Rapids CI machine
(2026-11-24): the shipped int8 model takes 57 ms per 512 x 512 slice with AMX
and 20 ms with the AVX-512 VNNI kernels XNNPACK falls back to when the
permission is refused; float models do not use AMX and are unaffected.

Linux has no switch to refuse one process AMX, so ``forgo_amx`` installs a
seccomp filter that fails exactly one system call, ``arch_prctl(
ARCH_REQ_XCOMP_PERM)``, with EPERM. That is a process-wide, irreversible change
(it also sets ``no_new_privs``, so setuid programs started later by this process
do not gain privileges), which the CLI makes for its own short-lived process and
which a library must not make behind its caller's back: Python users call it
themselves before loading a model. It must run before the first interpreter is
created, because XNNPACK asks once per process.
"""
from __future__ import annotations

import ctypes
import functools
import logging
import os
import sys

log = logging.getLogger(__name__)

_SYS_ARCH_PRCTL, _SYS_SECCOMP = 158, 317
_ARCH_GET_XCOMP_SUPP, _ARCH_GET_XCOMP_PERM, _ARCH_REQ_XCOMP_PERM = 0x1021, 0x1022, 0x1023
_XFEATURE_XTILEDATA = 1 << 18
_AUDIT_ARCH_X86_64 = 0xC000003E
_PR_SET_NO_NEW_PRIVS = 38
_SECCOMP_SET_MODE_FILTER, _SECCOMP_FILTER_FLAG_TSYNC = 1, 1
_RET_ALLOW, _RET_EPERM = 0x7FFF0000, 0x00050000 | 1
_LD_W_ABS, _JEQ_K, _RET_K = 0x20, 0x15, 0x06
_NR, _ARCH, _ARG0 = 0, 4, 16
"""Offsets in ``struct seccomp_data``: syscall number, audit arch, low word of the first argument."""


class _Instruction(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_Instruction))]


@functools.cache
def forgo_amx() -> str:
    """Refuse this process AMX if the CPU has it; returns what happened, for ``info``.

    Never raises: where the filter cannot be installed the interpreter simply
    keeps its own choice. Calling it again changes nothing.
    """
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        return "not applicable (no AMX on this platform)"
    libc = ctypes.CDLL(None, use_errno=True)
    if not _xcomp(libc, _ARCH_GET_XCOMP_SUPP) & _XFEATURE_XTILEDATA:
        return "not applicable (this CPU has no AMX)"
    if _xcomp(libc, _ARCH_GET_XCOMP_PERM) & _XFEATURE_XTILEDATA:
        return "in use (the permission was granted before emseg-lite could refuse it)"
    program = (_Instruction * 8)(
        _Instruction(_LD_W_ABS, 0, 0, _ARCH),
        _Instruction(_JEQ_K, 0, 5, _AUDIT_ARCH_X86_64),
        _Instruction(_LD_W_ABS, 0, 0, _NR),
        _Instruction(_JEQ_K, 0, 3, _SYS_ARCH_PRCTL),
        _Instruction(_LD_W_ABS, 0, 0, _ARG0),
        _Instruction(_JEQ_K, 0, 1, _ARCH_REQ_XCOMP_PERM),
        _Instruction(_RET_K, 0, 0, _RET_EPERM),
        _Instruction(_RET_K, 0, 0, _RET_ALLOW),
    )
    fprog = _Program(len(program), program)
    if (libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            or libc.syscall(_SYS_SECCOMP, _SECCOMP_SET_MODE_FILTER, _SECCOMP_FILTER_FLAG_TSYNC, ctypes.byref(fprog)) != 0):
        reason = ctypes.get_errno()
        log.warning("could not keep the interpreter off AMX (errno %d); int8 models may run slower", reason)
        return f"available (refusing it failed, errno {reason})"
    return "refused (int8 runs on AVX-512 VNNI, faster for this model)"


def _xcomp(libc, request: int) -> int:
    features = ctypes.c_uint64(0)
    if libc.syscall(_SYS_ARCH_PRCTL, request, ctypes.byref(features)) != 0:
        return 0
    return features.value
