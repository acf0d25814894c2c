"""Atomic file output and checksums.

Outputs are first written to a hidden temporary file in the destination folder
and renamed into place, so an interrupted or failed write never leaves a partial
mask, probability map or model card behind.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


class AtomicFile:
    """A hidden temporary file beside ``path`` that becomes ``path`` on ``commit``.

    For outputs written over time (a big mask, block by block): until
    ``commit`` nothing exists under the final name; ``abort`` removes the
    temporary file, so a failure or an interruption leaves nothing behind.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}.", suffix=f".tmp{self.path.suffix}")
        os.close(fd)
        self.tmp = Path(tmp)

    def commit(self) -> None:
        os.chmod(self.tmp, 0o644)
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``path``, on error it is removed."""
    target = AtomicFile(path)
    try:
        yield target.tmp
        target.commit()
    except BaseException:
        target.abort()
        raise


def atomic_write_bytes(path: str | Path, payload: bytes) -> None:
    with atomic_output(path) as tmp:
        tmp.write_bytes(payload)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
