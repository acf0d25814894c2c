"""``emseg-lite``: membrane masks of EM slices from the command line.

The top layer: each command parses its options, calls the pipelines, prints
and sets the exit code (0 all done, 1 some inputs failed, 2 usage error or
nothing processed). One module per command; ``common`` holds the Typer app and
what the commands share. Nothing below imports from here, and only this layer
prints.

May import: every layer below; nothing imports it.
"""
from __future__ import annotations

from . import evaluate, info, neurons, segment, volume, watch  # noqa: F401 -- each registers its command on ``app``
from .common import app


def main() -> None:
    app()
