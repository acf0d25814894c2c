"""Which TFLite interpreter runs the models, decided once.

Preference: ``ai-edge-litert`` (LiteRT, about 2x faster here), then the frozen
``tflite-runtime`` (breaks on numpy 2), then ``tf.lite`` -- the last only when
TensorFlow happens to be installed, since importing it costs seconds and
hundreds of MB. ``emseg-lite info`` reports the choice.
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

_CANDIDATES = (
    ("ai-edge-litert", "ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite-runtime", "tflite_runtime.interpreter", "tflite-runtime"),
    ("tensorflow.lite", "tensorflow.lite", "tensorflow"),
)


@dataclass(frozen=True)
class Backend:
    name: str
    distribution: str
    interpreter: Any
    load_delegate: Any

    @property
    def version(self) -> str:
        import importlib.metadata  # not at start-up: it alone costs ~20 ms

        return importlib.metadata.version(self.distribution)


@functools.lru_cache(maxsize=1)
def backend() -> Backend:
    """The first interpreter package that imports and works with this numpy."""
    failures = []
    for name, module_name, dist in _CANDIDATES:
        if importlib.util.find_spec(module_name.split(".")[0]) is None:
            continue
        try:
            module = importlib.import_module(module_name)
            interpreter = module.Interpreter
            load_delegate = getattr(module, "load_delegate", None) or module.experimental.load_delegate
        except (ImportError, SystemError, AttributeError, RuntimeError) as exc:
            log.warning("interpreter backend %s is installed but unusable: %s", name, exc)
            failures.append(f"{name} ({exc})")
            continue
        return Backend(name, dist, interpreter, load_delegate)
    detail = "; ".join(failures) or "none installed"
    raise ImportError(f"no TFLite interpreter available ({detail}); pip install ai-edge-litert")
