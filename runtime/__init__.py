"""emseg-lite runtime: membrane maps of EM slices with a TFLite model, no TensorFlow.

``from emseg_lite.runtime import Segmenter, amx`` is the Python API; the heavy
imports (numpy, the interpreter) happen on first use, so that the CLI can
answer ``--help`` without them.

The runtime is built in layers, each importing only the ones below it
(``tests/test_layers.py`` enforces it; CONTRIBUTING.md shows where things go):

    cli        the ``emseg-lite`` commands: parse, call, print, exit code
    napari     the napari plugin (extra ``napari``), beside cli: reader, segment widget, proofreading
    pipelines  everything that segments, on one block-wise core (segment, volume, watch, evaluate)
    post       probability -> membranes and regions, and the figures that score them
    engine     the network: interpreter, tiles, normalisation, resampling
    formats    sections and volumes in, masks and OME-Zarr out
    core       errors, atomic files, the model card, pixel boxes
"""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Segmenter", "amx", "__version__"]


def __getattr__(name: str):
    if name == "Segmenter":
        from .pipelines.segmenter import Segmenter

        return Segmenter
    if name == "amx":
        from .engine import amx

        return amx
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
