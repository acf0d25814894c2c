"""emseg-lite runtime: membrane maps of EM slices with a TFLite model, no TensorFlow.

``from emseg_lite.runtime import Segmenter`` is the Python API; the heavy
imports (numpy, the interpreter) happen on first use, so that the CLI can
answer ``--help`` without them.
"""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Segmenter", "__version__"]


def __getattr__(name: str):
    if name == "Segmenter":
        from .segmenter import Segmenter

        return Segmenter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
