"""Which models the benchmarks measure, and what each is compared against.

With a complete ``make export`` in ``models/`` (or ``$EMSEG_MODELS``), every
variant of that export is measured against its own full Keras model. Without
one, a ``--quick`` run is trained and exported on the fly so that the suite still
covers every variant in a few minutes; its agreement figures describe a barely
trained model and are recorded but not held to the floors. The embedded models
(the product) are always measured, against the embedded float32 model.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from emseg_lite.runtime.engine import registry

REPO = Path(__file__).resolve().parents[1]
EXPORTED = ("float32", "float16", "int8", "int8-ptq")
FLOORS = {"int8": 0.99, "int8-ptq": 0.99, "float16": 0.999, "float32": 0.999}
"""Pixel agreement with the full model that each variant must reach."""


@dataclass(frozen=True)
class ModelSet:
    folder: Path
    origin: str          # "make export", "quick export" or "embedded"
    reference: Path      # the full model every variant here is compared with
    floors_apply: bool

    def variant(self, name: str) -> Path:
        return self.folder / f"emseg-{name}.tflite"


def exported_set(tmp_root: Path) -> ModelSet:
    folder = Path(os.environ.get("EMSEG_MODELS", REPO / "models"))
    complete = (folder / "emseg-keras.keras").is_file() and all((folder / f"emseg-{v}.tflite").is_file() for v in EXPORTED)
    if complete:
        return ModelSet(folder, "make export", folder / "emseg-keras.keras", floors_apply=True)
    data = Path(os.environ["EMSEG_DATA"]) / "isbi2012"
    run, models = tmp_root / "quick-run", tmp_root / "quick-models"
    for command in (["emseg_lite.train", "--data", str(data), "--out", str(run), "--quick"],
                    ["emseg_lite.export", str(run), "--out", str(models), "--min-agreement", "0"]):
        subprocess.run([sys.executable, "-m", *command], check=True, cwd=REPO, capture_output=True)
    return ModelSet(models, "quick export", models / "emseg-keras.keras", floors_apply=False)


def embedded_set() -> ModelSet:
    return ModelSet(registry.EMBEDDED_DIR, "embedded", registry.embedded_models()["float32"], floors_apply=True)
