"""Errors a user can fix.

Every problem with an input file, a model or an output location is raised as an
``EmsegError`` whose message is one line that starts with the offending path.
The CLI prints that line and sets the exit code; anything else that escapes is a
bug and keeps its traceback.
"""
from __future__ import annotations

from pathlib import Path


class EmsegError(Exception):
    """A user-fixable problem, reported as ``"<path>: <problem>"``."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(problem if path is None else f"{path}: {problem}")


class InputError(EmsegError):
    """An input image (or label image) cannot be used."""


class ModelError(EmsegError):
    """A model file, its card or a delegate cannot be used."""


class OutputError(EmsegError):
    """An output cannot be written where it was asked to go."""
