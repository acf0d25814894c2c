"""Latency of every model variant on real slices, each with its agreement with the full model.

Latency is reported, never asserted; agreement floors are asserted wherever the
models are real (a ``make export`` or the embedded ones).
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emseg_lite.export.agreement import agreement
from emseg_lite.runtime import batch
from emseg_lite.runtime.io import read_slices
from emseg_lite.runtime.metrics import rand_and_info
from emseg_lite.runtime.postprocess import membrane_mask
from emseg_lite.runtime.segmenter import Segmenter

from .subjects import EXPORTED, FLOORS

THREADS = (1, 2)
_REFERENCES: dict = {}


def _figures(segmenter: Segmenter, probability: np.ndarray, reference: np.ndarray, truth, floor_applies: bool,
             variant: str, pixels: int) -> dict:
    """Agreement with the reference map (and V_rand difference when labels exist), size, MACs, FLOPs."""
    card = segmenter.card
    post = card.postprocessing
    if truth is not None:
        v_rand = rand_and_info(membrane_mask(probability, post), truth)[0]
        v_rand_ref = rand_and_info(membrane_mask(reference, post), truth)[0]
    else:
        v_rand = v_rand_ref = 0.0
    floor = FLOORS.get(variant, 0.0)
    found = agreement([probability], [reference], post, v_rand, v_rand_ref, floor)
    if floor_applies:
        assert found.pixel_agreement >= floor, f"{variant}: {100 * found.pixel_agreement:.3f}% < {100 * floor}%"
    tiles = segmenter.grid.count(*probability.shape)
    return dict(variant=variant, pixel_agreement=found.pixel_agreement, membrane_dice=found.membrane_dice,
                v_rand_diff=found.v_rand_diff, v_rand=v_rand, floor_asserted=floor_applies,
                size_bytes=card.model.size_bytes, macs=card.architecture.macs_per_tile * tiles,
                flop=2 * card.architecture.macs_per_tile * tiles, tiles=tiles, pixels=pixels,
                threads=segmenter.net.threads)


def _keras_reference(model_set, image):
    """Full Keras model's map of ``image`` (and the model, its card and exact halo)."""
    key = (model_set.reference, image.shape)
    if key not in _REFERENCES:
        from emseg_lite.runtime.card import ModelCard, card_path_for
        from emseg_lite.train.keras2 import keras
        from emseg_lite.train.predict import predict_slice

        card = ModelCard.load(card_path_for(model_set.reference))
        model = keras.models.load_model(model_set.reference, compile=False)
        align = card.tiling.align
        halo = math.ceil(card.architecture.receptive_field_radius / align) * align
        run = lambda: predict_slice(model, image, card.normalization, halo, align)  # noqa: E731
        _REFERENCES[key] = (run(), run, card, halo)
    return _REFERENCES[key]


def _tflite_reference(model_set, image):
    key = (model_set.reference, image.shape)
    if key not in _REFERENCES:
        _REFERENCES[key] = Segmenter.load(model_set.reference, threads=2).probabilities(image)
    return _REFERENCES[key]


def test_full_keras_model(benchmark, record, exported, isbi_slice):
    image, truth = isbi_slice
    reference, run, card, halo = _keras_reference(exported, image)
    benchmark(run)
    side = -(-(512 + 2 * halo) // card.tiling.align) * card.tiling.align
    macs = card.architecture.macs_per_tile * side**2 / card.tiling.tile**2
    record(variant="keras", origin=exported.origin, pixel_agreement=1.0, membrane_dice=1.0, v_rand_diff=0.0,
           v_rand=rand_and_info(membrane_mask(reference, card.postprocessing), truth)[0],
           size_bytes=card.model.size_bytes, macs=int(macs), flop=int(2 * macs), threads="tf default")


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("variant", EXPORTED)
def test_exported_variant(benchmark, record, exported, isbi_slice, variant, threads):
    image, truth = isbi_slice
    segmenter = Segmenter.load(exported.variant(variant), threads=threads)
    reference = _keras_reference(exported, image)[0]
    probability = benchmark(segmenter.probabilities, image)
    record(origin=exported.origin, **_figures(segmenter, probability, reference, truth, exported.floors_apply,
                                              variant, image.size))


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("variant", ["int8", "float16", "float32"])
def test_embedded_model(benchmark, record, embedded, isbi_slice, variant, threads):
    image, truth = isbi_slice
    segmenter = Segmenter.load(variant, threads=threads)
    probability = benchmark(segmenter.probabilities, image)
    record(origin="embedded", **_figures(segmenter, probability, _tflite_reference(embedded, image), truth,
                                         embedded.floors_apply and variant != "float32", variant, image.size))


def test_embedded_int8_tiled_1024_big_endian_tiff(benchmark, record, embedded, vnc_path):
    image = read_slices(vnc_path).pages[0]
    segmenter = Segmenter.load("int8", threads=2)
    probability = benchmark(segmenter.probabilities, image)
    record(origin="embedded", **_figures(segmenter, probability, _tflite_reference(embedded, image), None,
                                         embedded.floors_apply, "int8", image.size))


def test_segment_folder_per_slice(benchmark, record, data_root, tmp_path):
    """`emseg-lite segment` over a folder of 30 ISBI slices: read, infer, post-process, write."""
    files = sorted((data_root / "isbi2012" / "test").glob("*.png"))
    segmenter = Segmenter.load("int8", threads=2)
    options = batch.Options(out_dir=tmp_path, overwrite=True)

    def run_folder():
        events = list(batch.run(segmenter, files, options))
        assert not [e for e in events if isinstance(e, batch.FileFailed)]

    benchmark.pedantic(run_folder, rounds=3, iterations=1, warmup_rounds=1)
    record(origin="embedded", variant="int8", slices=len(files),
           ms_per_slice=1000 * benchmark.stats.stats.median / len(files), threads=2)


def test_cli_cold_start(benchmark, record, isbi_slice, data_root, tmp_path):
    """Process start to mask written, for one 512 x 512 slice, and the process's peak memory."""
    cli = str(Path(sys.executable).parent / "emseg-lite")
    slice_path = data_root / "isbi2012" / "test" / "0.png"
    peaks = []

    def cold_start():
        process = subprocess.Popen([cli, "segment", str(slice_path), "-o", str(tmp_path), "--overwrite", "-q"])
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        assert process.returncode == 0
        peaks.append(usage.ru_maxrss / 1024)

    benchmark.pedantic(cold_start, rounds=5, iterations=1, warmup_rounds=1)
    record(origin="embedded", variant="int8 (CLI)", peak_rss_mb=round(max(peaks), 1), threads="default")
