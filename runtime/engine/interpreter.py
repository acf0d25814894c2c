"""A loaded .tflite network: encode a normalised tile, invoke, decode the probability.

The three steps are separate so that the segmenter can encode integer slices
through a lookup table and decode only the part of each tile it keeps. ``Net``
is what the tiler sees; ``TFLiteNet`` runs it with the TFLite interpreter
(XNNPACK on the CPU, or a delegate library), ``gpu.GpuNet`` on the GPU.

Everything about the tensors (index, shape, dtype, scale, zero point) is read
from the model itself and cached once; int8 models are quantised as
``clip(round(x / scale) + zero_point)`` and dequantised as
``(q - zero_point) * scale`` with the tensor's own parameters.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..core.card import ModelCard, TensorSpec
from ..core.errors import ModelError
from .backend import backend

log = logging.getLogger(__name__)


class Net:
    """What every network offers the tiler, whatever runs it: its tensors (``input``,
    ``output``, read from the model), the card check, and encode / invoke / decode."""

    path: Path
    threads: int
    delegate: str | None = None
    accelerator = "cpu"
    resizable = True
    """Whether ``resize`` takes other tile sizes; a GPU-compiled model keeps the one it was exported with."""
    input: TensorSpec
    output: TensorSpec

    @property
    def tile(self) -> int:
        return int(self.input.shape[1])

    def resize(self, tile: int) -> None:
        raise NotImplementedError

    def check_card(self, card: ModelCard, card_path: Path) -> None:
        """Refuse a card whose tensors are not this model's."""
        problems = []
        for name, card_spec, real in (("input", card.input, self.input), ("output", card.output, self.output)):
            if list(card_spec.shape) != list(real.shape) or card_spec.dtype != real.dtype:
                problems.append(f"{name} is {real.dtype}{real.shape} but the card says {card_spec.dtype}{card_spec.shape}")
            elif real.scale is not None and not np.isclose(card_spec.scale or 0.0, real.scale, rtol=1e-5):
                problems.append(f"{name} scale is {real.scale} but the card says {card_spec.scale}")
        if problems:
            raise ModelError(card_path, "card does not match the model: " + "; ".join(problems))

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Normalised float values -> the input tensor's dtype (quantised for int8 models)."""
        return _quantize(values, self.input)

    def invoke(self, tile: np.ndarray) -> np.ndarray:
        """(t, t) encoded input -> (t, t) raw output tensor (quantised for int8 models)."""
        raise NotImplementedError

    def decode(self, raw: np.ndarray) -> np.ndarray:
        """Raw output values -> float32 membrane probability."""
        return _dequantize(raw, self.output)


class TFLiteNet(Net):
    """The TFLite interpreter on the CPU (XNNPACK), or on an external delegate library."""

    def __init__(self, path: Path, threads: int, delegate: str | None = None):
        impl = backend()
        delegates = []
        if delegate:
            delegates.append(_load_delegate(impl, delegate))
        with native_output() as native:
            try:
                self._interpreter = impl.interpreter(
                    model_path=str(path), num_threads=threads, experimental_delegates=delegates or None
                )
                self._interpreter.allocate_tensors()
            except (ValueError, RuntimeError) as exc:
                detail = " ".join(native.read().split()) or str(exc).splitlines()[0]
                raise ModelError(path, f"not a valid TFLite model ({detail})") from None
        self.path = path
        self.threads = threads
        self.delegate = delegate
        self._read_details()

    def _read_details(self) -> None:
        (inp,) = self._interpreter.get_input_details()
        (out,) = self._interpreter.get_output_details()
        self._input_index, self._output_index = inp["index"], out["index"]
        self.input = tensor_spec(inp)
        self.output = tensor_spec(out)

    def resize(self, tile: int) -> None:
        """Run on ``tile`` x ``tile`` inputs (the network is fully convolutional)."""
        if tile == self.tile:
            return
        self._interpreter.resize_tensor_input(self._input_index, [1, tile, tile, 1], strict=False)
        self._interpreter.allocate_tensors()
        self._read_details()

    def invoke(self, tile: np.ndarray) -> np.ndarray:
        self._interpreter.set_tensor(self._input_index, tile[np.newaxis, :, :, np.newaxis])
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output_index)[0, :, :, 0]


def _load_delegate(impl, library: str):
    """Load an external delegate, refusing a library that cannot be opened first.

    LiteRT's own ``load_delegate`` leaves a half-built object behind on failure
    whose destructor prints a traceback, so the library is opened with ctypes
    before LiteRT sees it.
    """
    import ctypes

    try:
        ctypes.CDLL(library)
    except OSError as exc:
        raise ModelError(library, f"cannot load TFLite delegate ({exc})") from None
    try:
        return impl.load_delegate(library)
    except (ValueError, OSError, RuntimeError) as exc:
        raise ModelError(library, f"cannot load TFLite delegate ({exc})") from None


class _Captured:
    def __init__(self, handle):
        self._handle = handle

    def read(self) -> str:
        self._handle.seek(0)
        return self._handle.read().decode(errors="replace")


@contextlib.contextmanager
def native_output():
    """Capture what native code writes to stdout and stderr while a model loads.

    The interpreter announces its XNNPACK delegate on every start ("INFO: Created
    TensorFlow Lite XNNPACK delegate") and LiteRT's GPU accelerator a page more,
    some of it on stdout, which would clutter every ``emseg-lite`` run (and a
    ``segment -`` pipe); their real complaints are kept and put into our errors.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield _Captured(sink)
        finally:
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)


def tensor_spec(detail: dict) -> TensorSpec:
    """A tensor's shape, dtype and quantisation from interpreter tensor details."""
    params = detail.get("quantization_parameters", {})
    scales, zero_points = params.get("scales", []), params.get("zero_points", [])
    quantized = len(scales) > 0 and np.dtype(detail["dtype"]).kind in "iu"
    return TensorSpec(
        shape=[int(n) for n in detail["shape"]],
        dtype=np.dtype(detail["dtype"]).name,
        scale=float(scales[0]) if quantized else None,
        zero_point=int(zero_points[0]) if quantized else None,
    )


def _quantize(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    if spec.scale is None:
        return values.astype(spec.dtype, copy=False)
    info = np.iinfo(spec.dtype)
    q = np.round(values / np.float32(spec.scale)) + spec.zero_point
    return np.clip(q, info.min, info.max).astype(spec.dtype)


def _dequantize(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    if spec.scale is None:
        return values.astype(np.float32)
    return (values.astype(np.float32) - np.float32(spec.zero_point)) * np.float32(spec.scale)
