"""Latency of every model variant on real slices, each with its agreement with the full model.

Latency is reported, never asserted; agreement floors are asserted wherever the
models are real (a ``make export`` or the embedded ones).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emseg_lite.export.agreement import agreement
from emseg_lite.runtime.engine.gpu import GpuUnavailable
from emseg_lite.runtime.formats.reader import read_slices
from emseg_lite.runtime.pipelines import batch
from emseg_lite.runtime.pipelines.segmenter import Segmenter
from emseg_lite.runtime.post.metrics import rand_and_info
from emseg_lite.runtime.post.postprocess import membrane_mask

from .mosaic import TILE, band, variants
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


def _keras_reference(model_set, image: np.ndarray, tmp_dir: Path) -> np.ndarray:
    """The full Keras model's map of ``image``, computed in a child process (see keras_reference)."""
    key = (model_set.reference, image.shape)
    if key not in _REFERENCES:
        np.save(tmp_dir / "slice.npy", image)
        subprocess.run([sys.executable, "-m", "benchmarks.keras_reference", str(model_set.reference),
                        str(tmp_dir / "slice.npy"), str(tmp_dir / "map.npy")],
                       check=True, capture_output=True, cwd=Path(__file__).resolve().parents[1])
        _REFERENCES[key] = np.load(tmp_dir / "map.npy")
    return _REFERENCES[key]


def _tflite_reference(model_set, image):
    key = (model_set.reference, image.shape)
    if key not in _REFERENCES:
        _REFERENCES[key] = Segmenter.load(model_set.reference, threads=2).probabilities(image)
    return _REFERENCES[key]


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("variant", EXPORTED)
def test_exported_variant(benchmark, record, exported, isbi_slice, variant, threads, tmp_path_factory):
    image, truth = isbi_slice
    segmenter = Segmenter.load(exported.variant(variant), threads=threads)
    reference = _keras_reference(exported, image, tmp_path_factory.mktemp("reference"))
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


@pytest.mark.parametrize("variant", ["float16", "float16-2048", "float32", "int8"])
def test_embedded_model_on_gpu(benchmark, record, embedded, isbi_slice, variant):
    """The GPU route (LiteRT's WebGPU accelerator) wherever an adapter is present; agreement
    is with the same reference as the CPU rows, so the two read side by side."""
    image, truth = isbi_slice
    try:
        segmenter = Segmenter.load(variant, accelerator="gpu")
    except GpuUnavailable as exc:
        pytest.skip(f"skipped: no GPU adapter ({exc.reason})")
    segmenter.probabilities(image)  # compiles the GPU's kernels: not part of the latency
    probability = benchmark(segmenter.probabilities, image)
    record(origin="embedded", accelerator=segmenter.placement,
           **_figures(segmenter, probability, _tflite_reference(embedded, image), truth,
                      embedded.floors_apply and variant != "float32", variant, image.size))


GPU_SIDE = int(os.environ.get("EMSEG_GPU_SIDE", "4096"))
"""The section side of the inference-throughput rows: 4096 px is 64 calls of the 608 px
model and 9 of the 2048 px one, enough to fill a GPU's queue."""


@pytest.fixture(scope="module")
def mosaic_section(data_root) -> np.ndarray:
    """A ``GPU_SIDE`` square mosaic of real vnc-stack2 sections, in memory."""
    parts = variants(data_root)
    return np.concatenate([band(parts, row, GPU_SIDE) for row in range(-(-GPU_SIDE // TILE))])[:GPU_SIDE]


@pytest.mark.parametrize("accelerator,variant", [("gpu", "float16"), ("gpu", "float16-2048"),
                                                 ("cpu", "float16"), ("cpu", "int8")])
def test_inference_throughput_on_a_big_section(benchmark, record, embedded, mosaic_section, accelerator, variant):
    """Inference alone (no post-processing, no files) in megapixels a second, the figure the
    GPU route is aimed at (500 MP/s), with the CPU beside it on the same section. Agreement
    is with the float32 model on the CPU."""
    try:
        segmenter = Segmenter.load(variant, accelerator=accelerator)
    except GpuUnavailable as exc:
        pytest.skip(f"skipped: no GPU adapter ({exc.reason})")
    segmenter.probabilities(mosaic_section[:TILE, :TILE])  # compiles the GPU's kernels: not timed
    probability = benchmark.pedantic(segmenter.probabilities, args=(mosaic_section,), rounds=3, iterations=1)
    seconds = benchmark.stats.stats.median
    rate = mosaic_section.size / seconds / 1e6
    record(origin="embedded", accelerator=segmenter.placement, side=GPU_SIDE, megapixels_per_s=round(rate, 1),
           **_figures(segmenter, probability, _tflite_reference(embedded, mosaic_section), None,
                      embedded.floors_apply, variant, mosaic_section.size))
    print(f"\n{GPU_SIDE} x {GPU_SIDE}, {variant} on {segmenter.placement}: {seconds:.3f} s, "
          f"{rate:.1f} MP/s")


def test_embedded_int8_tiled_1024_big_endian_tiff(benchmark, record, embedded, vnc_path):
    image = read_slices(vnc_path).pages[0]
    segmenter = Segmenter.load("int8", threads=2)
    probability = benchmark(segmenter.probabilities, image)
    record(origin="embedded", **_figures(segmenter, probability, _tflite_reference(embedded, image), None,
                                         embedded.floors_apply, "int8", image.size))


_FOLDER_MS: dict[str, float] = {}


@pytest.mark.parametrize("post", ["none", "watershed"])
def test_segment_folder_per_slice(benchmark, record, data_root, tmp_path, post):
    """`emseg-lite segment` over a folder of 30 ISBI slices, as the CLI runs it (one
    single-threaded interpreter per core): read, infer, post-process, write. The
    watershed's cost is its time against ``--post none`` in the same run."""
    files = sorted((data_root / "isbi2012" / "test").glob("*.png"))
    segmenter = Segmenter.load("int8", threads=1)
    options = batch.Options(out_dir=tmp_path, overwrite=True, post=segmenter.postprocessing(post), workers=2)

    def run_folder():
        events = list(batch.run(segmenter, files, options))
        assert not [e for e in events if isinstance(e, batch.FileFailed)]

    benchmark.pedantic(run_folder, rounds=3, iterations=1, warmup_rounds=1)
    _FOLDER_MS[post] = 1000 * benchmark.stats.stats.median / len(files)
    info = dict(origin="embedded", variant=f"int8, post {post}", slices=len(files), ms_per_slice=_FOLDER_MS[post],
                threads="2 x 1")
    if post == "watershed" and "none" in _FOLDER_MS:
        info["ratio_to_post_none"] = round(_FOLDER_MS["watershed"] / _FOLDER_MS["none"], 3)
    record(**info)


_CLI_WITH_PEAK = """
import atexit, sys
def report_peak():
    status = open("/proc/self/status").read()
    sys.stderr.write("PEAK_KB " + status.split("VmHWM:")[1].split()[0] + "\\n")
atexit.register(report_peak)
sys.argv = ["emseg-lite", *sys.argv[1:]]
from emseg_lite.runtime.cli import main
main()
"""


def test_cli_cold_start(benchmark, record, data_root, tmp_path):
    """Process start to mask written, for one 512 x 512 slice, and the process's peak memory.

    The CLI runs exactly as the ``emseg-lite`` script runs it; the child reports
    its own peak resident memory (VmHWM) at exit, since rusage of a child forked
    from this TensorFlow-laden process would count the parent's pages too.
    """
    slice_path = data_root / "isbi2012" / "test" / "0.png"
    peaks = []

    def cold_start():
        result = subprocess.run([sys.executable, "-c", _CLI_WITH_PEAK, "segment", str(slice_path), "-o", str(tmp_path),
                                 "--overwrite", "-q"], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        peaks.append(int(result.stderr.split("PEAK_KB")[1].split()[0]) / 1024)

    benchmark.pedantic(cold_start, rounds=5, iterations=1, warmup_rounds=1)
    record(origin="embedded", variant="int8 (CLI)", peak_rss_mb=round(max(peaks), 1), threads="default")


def test_full_keras_model(benchmark, record, exported, isbi_slice):
    """Last on purpose: from here on TensorFlow lives in this process."""
    from .keras_reference import full_model

    image, truth = isbi_slice
    predict, card, halo = full_model(exported.reference)
    reference = benchmark(predict, image)
    side = -(-(512 + 2 * halo) // card.tiling.align) * card.tiling.align
    macs = card.architecture.macs_per_tile * side**2 / card.tiling.tile**2
    record(variant="keras", origin=exported.origin, pixel_agreement=1.0, membrane_dice=1.0, v_rand_diff=0.0,
           v_rand=rand_and_info(membrane_mask(reference, card.postprocessing), truth)[0],
           size_bytes=card.model.size_bytes, macs=int(macs), flop=int(2 * macs), threads="tf default")
