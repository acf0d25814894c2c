"""Named models that ship inside the package, resolved in one place.

``runtime/models/emseg-<variant>.tflite`` (with its card ``emseg-<variant>.json``)
is the embedded model ``<variant>``; ``int8`` is the default, ``float16`` on the GPU. The CLI and the
Python API pass whatever the user gave -- a name, a path or nothing -- here and
never build paths themselves.
"""
from __future__ import annotations

from pathlib import Path

from ..core.errors import ModelError

EMBEDDED_DIR = Path(__file__).parents[1] / "models"
DEFAULT_MODEL = "int8"
GPU_MODEL = "float16"
"""The default on the GPU: float16 is what GPUs compute in, and the card's agreement gate holds it."""
_PREFIX = "emseg-"


def embedded_models() -> dict[str, Path]:
    """Variant name -> path of every model shipped with this installation."""
    return {p.stem[len(_PREFIX):]: p for p in sorted(EMBEDDED_DIR.glob(f"{_PREFIX}*.tflite"))}


def resolve(model: str | Path | None = None) -> Path:
    """A .tflite path for ``model``: an existing file, or the name of an embedded model."""
    choice = DEFAULT_MODEL if model is None else str(model)
    embedded = embedded_models()
    if choice in embedded and not Path(choice).exists():
        return embedded[choice]
    path = Path(choice)
    if path.is_file():
        return path
    if path.suffix == ".tflite" or path.parent != Path(".") or path.exists():
        raise ModelError(path, "no such model file")
    names = ", ".join(embedded) or "none are installed"
    raise ModelError(None, f"unknown model {choice!r}: give a .tflite file or an embedded model ({names})")
