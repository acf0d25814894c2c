"""Build ``<name>.bioimageio.zip`` from a full Keras model and its card.

The source is anything holding the full model and its ``keras`` card: a run
directory (``model.keras`` + ``card.json``), an export folder
(``emseg-keras.keras`` + ``emseg-keras.json``) or the ``.keras`` file itself.
Steps, each from the card and the model alone:

1. ONNX and SavedModel weights (``weights.py``).
2. The ONNX weights run over the held-out sections exactly as the full model
   is run (one window with the exact halo); their largest probability
   difference and mask agreement go into the ONNX card (``emseg-onnx.json``)
   and gate the package, as the int8 gate does for TFLite.
3. Test tensors: the first held-out section as it is, and the full model's
   output for it (normalised as the card says, no padding: what
   ``bioimageio test`` recomputes with each weight format); the same two as
   TIFF sample tensors for people to look at.
4. Cover, README and rdf, generated; then the zip, written atomically.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import io
import json
import logging
import math
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime
import tf2onnx
import tifffile
import yaml

from emseg_lite.runtime.core.card import ModelCard, ModelFile, TensorSpec, card_path_for
from emseg_lite.runtime.core.errors import ModelError
from emseg_lite.runtime.core.files import atomic_output, atomic_write_bytes, file_sha256
from emseg_lite.runtime.engine.intensity import intensity_range, normalize
from emseg_lite.runtime.pipelines.evaluate import both_methods, score_volume
from emseg_lite.runtime.post.postprocess import membrane_mask
from emseg_lite.train.keras2 import keras, tf
from emseg_lite.train.predict import predict_slice

from ..agreement import agreement
from ..build import GateFailure, training_volume
from . import rdf, weights
from .cover import cover_png
from .readme import model_readme

log = logging.getLogger(__name__)

ONNX_FLOOR = 0.9999
"""Fraction of held-out pixels whose ONNX mask must equal the full model's."""
ONNX_MAX_ABS_DIFF = 1e-4
"""Largest membrane-probability difference allowed between ONNX and the full model. A float32
conversion differs by rounding (about 1e-6); a wrong layer or layout shows as 1e-2 or more."""
ONNX_FILE, CARD_FILE, SAVED_MODEL_FILE = "emseg-onnx.onnx", "emseg-onnx.json", "emseg-saved-model.zip"
TEST_INPUT, TEST_OUTPUT, README, COVER = "test_input.npy", "test_output.npy", "README.md", "cover.png"
SAMPLE_INPUT, SAMPLE_OUTPUT, RDF = "sample_input.tif", "sample_output.tif", "rdf.yaml"
_ZIP_TIME = (2026, 1, 1, 0, 0, 0)
"""Fixed entry times, so that a package differs from another only where its files do."""


def locate_full_model(source: Path) -> tuple[Path, ModelCard]:
    """The full Keras model and its card in a run directory, an export folder or a .keras path."""
    if source.is_dir():
        for card_name in ("card.json", "emseg-keras.json"):
            if (source / card_name).is_file():
                card = ModelCard.load(source / card_name)
                path = source / card.model.file
                break
        else:
            raise ModelError(source, "holds neither card.json (a run) nor emseg-keras.json (an export)")
    elif source.suffix == ".keras" and source.is_file():
        card_file = card_path_for(source)
        card = ModelCard.load(card_file if card_file.is_file() else source.parent / "card.json")
        path = source
    else:
        raise ModelError(source, "no such run directory, export folder or .keras model")
    if card.variant != "keras":
        raise ModelError(path, f"is described by a {card.variant!r} card; "
                               "the package is built from the full Keras model")
    card.check_model_file(path)
    return path, card


def build_package(source: Path, out: Path, *, name: str = "emseg", data: str | None = None,
                  pixel_size_nm: float | None = None, float_model_of: Path | None = None,
                  threads: int = 2) -> tuple[ModelCard, Path]:
    """Write ``out/<name>.bioimageio.zip`` (and the ONNX model with its card); return the card and the zip.

    ``float_model_of``: the card of a variant (the shipped int8's) whose full model this must be.
    """
    keras_path, card = locate_full_model(source)
    card = _with_pixel_size(card, keras_path, pixel_size_nm)
    if float_model_of is not None:
        check_float_model_of(card, keras_path, ModelCard.load(float_model_of), float_model_of)
    training = card.training
    sections = training.val_sections or training.train_sections
    volume = training_volume(training, data).select(sections)

    log.info("converting %s to ONNX (opset %d)", keras_path, weights.OPSET)
    model = keras.models.load_model(keras_path, compile=False)
    onnx_bytes = weights.to_onnx(model)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / ONNX_FILE, onnx_bytes)

    log.info("measuring the ONNX weights against the full model on sections %s", sections)
    onnx_card = _measure(card, onnx_bytes, out / ONNX_FILE, model, volume, threads)
    onnx_card.save(out / CARD_FILE)
    if not onnx_card.agreement.passed:
        a = onnx_card.agreement
        raise GateFailure(f"onnx: largest probability difference {a.max_abs_diff:.3g} "
                          f"(limit {a.max_abs_diff_limit:g}), {100 * a.pixel_agreement:.4f}% pixel agreement "
                          f"(floor {100 * a.floor:g}%)")

    target = out / f"{name}.bioimageio.zip"
    _write_zip(target, _contents(model, card, onnx_card, onnx_bytes, volume.images[0], target.name))
    log.info("wrote %s", target)
    return onnx_card, target


def _contents(model: keras.Model, card: ModelCard, onnx_card: ModelCard, onnx_bytes: bytes, section: np.ndarray,
              package: str) -> dict[str, bytes]:
    """Every file of the package by name, the rdf last since it holds the others' checksums."""
    with tempfile.TemporaryDirectory() as workdir:
        saved_model = weights.saved_model_zip(model, Path(workdir))
    section = _allowed_size(section, card)
    test_input, test_output = _test_tensors(model, section, card)
    probability = predict_slice(model, section, card.normalization, _exact_halo(card), card.tiling.align)
    contents = {
        ONNX_FILE: onnx_bytes, SAVED_MODEL_FILE: saved_model,
        TEST_INPUT: _npy(test_input), TEST_OUTPUT: _npy(test_output),
        SAMPLE_INPUT: _tiff(section), SAMPLE_OUTPUT: _tiff(test_output[0, :, :, 0]),
        CARD_FILE: (json.dumps(onnx_card.to_dict(), indent=2) + "\n").encode(),
        COVER: cover_png(section, membrane_mask(probability, card.postprocessing), card.normalization, card.mask),
    }
    files = rdf.PackageFiles(**{key: rdf.PackageFile(file, _sha256(contents[file])) for key, file in (
        ("onnx", ONNX_FILE), ("saved_model", SAVED_MODEL_FILE), ("test_input", TEST_INPUT),
        ("test_output", TEST_OUTPUT), ("sample_input", SAMPLE_INPUT), ("sample_output", SAMPLE_OUTPUT),
        ("card", CARD_FILE))}, readme=README, cover=COVER)
    description = rdf.describe(onnx_card, files, _project())
    contents[README] = model_readme(onnx_card, description["name"], package).encode()
    contents[RDF] = yaml.safe_dump(description, sort_keys=False, allow_unicode=True, width=100).encode()
    return contents


def _write_zip(target: Path, contents: dict[str, bytes]) -> None:
    """The zip, rdf.yaml first, written atomically: no partial package is ever left behind."""
    with atomic_output(target) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(contents, key=lambda n: n != RDF):
            entry = zipfile.ZipInfo(name, _ZIP_TIME)
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, contents[name], zipfile.ZIP_DEFLATED)


def _measure(card: ModelCard, onnx_bytes: bytes, onnx_path: Path, model: keras.Model, volume,
             threads: int) -> ModelCard:
    """The ONNX model's card: the full model's, with its file, tensors and measured figures."""
    onnx_model = weights.OnnxAsKeras(onnx_bytes, threads)
    halo, align = _exact_halo(card), card.tiling.align
    full_maps = [predict_slice(model, image, card.normalization, halo, align) for image in volume.images]
    onnx_maps = [predict_slice(onnx_model, image, card.normalization, halo, align) for image in volume.images]
    posts = both_methods(card.postprocessing)
    full_report = score_volume(full_maps, volume, posts)
    onnx_report = score_volume(onnx_maps, volume, posts)
    method = card.postprocessing.method
    validation = card.validation
    if card.training.val_sections:
        validation = {**validation, "full_model": full_report.evaluation(), "variant": onnx_report.evaluation()}
    dynamic = TensorSpec([-1, -1, -1, 1], "float32")
    return dataclasses.replace(
        card,
        variant="onnx",
        model=ModelFile(onnx_path.name, onnx_path.stat().st_size, file_sha256(onnx_path)),
        input=dynamic,
        output=dynamic,
        validation=validation,
        agreement=agreement(onnx_maps, full_maps, card.postprocessing, onnx_report.mean(method).v_rand,
                            full_report.mean(method).v_rand, ONNX_FLOOR, ONNX_MAX_ABS_DIFF),
        versions={**card.versions, "tf2onnx": tf2onnx.__version__, "onnx_opset": str(weights.OPSET),
                  "measured_with": f"onnxruntime {onnxruntime.__version__}"},
    )


def _test_tensors(model: keras.Model, image: np.ndarray, card: ModelCard) -> tuple[np.ndarray, np.ndarray]:
    """A real section, of a size the rdf allows (``_allowed_size``), as (1, h, w, 1) float32
    grey values, and the full model's output for it."""
    normalized = normalize(image, *intensity_range(image, card.normalization))
    output = model(normalized[np.newaxis, :, :, np.newaxis], training=False).numpy().astype(np.float32)
    return image.astype(np.float32)[np.newaxis, :, :, np.newaxis], output


def _allowed_size(image: np.ndarray, card: ModelCard) -> np.ndarray:
    """A section whose sides are not a size the rdf allows (at least ``rdf.min_size``, a multiple
    of the down-sampling) -- a lab's 100 x 200 px FIB-SEM sections, say -- mirrored at its
    bottom and right edges up to the next allowed size."""
    step, least = card.tiling.align, rdf.min_size(card)
    pads = [(0, max(least, -(-n // step) * step) - n) for n in image.shape]
    return np.pad(image, pads, mode="symmetric") if any(after for _, after in pads) else image


def _with_pixel_size(card: ModelCard, path: Path, pixel_size_nm: float | None) -> ModelCard:
    recorded = card.training.pixel_size_nm
    if pixel_size_nm is None:
        return card
    if recorded is not None and not math.isclose(recorded, pixel_size_nm):
        raise ModelError(path, f"the card records {recorded:g} nm pixels, not {pixel_size_nm:g}")
    return dataclasses.replace(card, training=dataclasses.replace(card.training, pixel_size_nm=pixel_size_nm))


def check_float_model_of(card: ModelCard, path: Path, variant: ModelCard, variant_path: Path) -> None:
    """Refuse a full model other than the one ``variant`` was exported from and measured against.

    The weights are tied to ``card`` by its sha256 (``locate_full_model``); ``card`` is tied to the
    variant by what both recorded of the full model: its validation figures (V_rand, V_info ... to
    the last digit, a fingerprint of the weights on the held-out sections) and every setting that
    shaped it. Date, duration, command line and machine may differ: a re-run of ``make train`` on
    the same kind of CPU reproduces the weights bit for bit.
    """
    def recipe(c: ModelCard):
        t = c.training
        return (c.validation.get("full_model"), c.architecture, c.normalization, c.tiling, c.postprocessing,
                t.data, t.train_sections, t.val_sections, t.epochs, t.qat_epochs, t.seed, t.loss)

    if recipe(card) != recipe(variant):
        raise ModelError(path, f"is not the full model {variant_path} was exported from "
                               f"(their cards record different validation figures or settings)")


def _exact_halo(card: ModelCard) -> int:
    align = card.tiling.align
    return math.ceil(card.architecture.receptive_field_radius / align) * align


def _project() -> rdf.Project:
    meta = importlib.metadata.metadata("emseg-lite")
    return rdf.Project(version=meta["Version"], license=meta["License-Expression"] or meta["License"],
                       authors=tuple(a.strip() for a in (meta["Author"] or "").split(",") if a.strip()),
                       tensorflow=tf.__version__, tf2onnx=tf2onnx.__version__)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _tiff(plane: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, plane)
    return buffer.getvalue()


def _sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()
