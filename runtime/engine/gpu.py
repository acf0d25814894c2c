"""A model on the GPU through LiteRT's own WebGPU accelerator (Dawn over Vulkan or Metal).

The ``ai-edge-litert`` wheel the runtime already installs carries
``libLiteRtWebGpuAccelerator.so``, reached through ``CompiledModel`` with
``HardwareAccelerator.GPU``: no delegate library to find, no new dependency. On
Linux it needs the Vulkan loader (``libvulkan.so.1``, Debian/Ubuntu package
``libvulkan1``) and a Vulkan driver for the GPU; without them Dawn reports "No
adapters found" and this module says which of the two is missing.

The GPU compiles the model for the input size it was exported with (LiteRT
refuses to resize it: "New shape is not compatible"), so a ``GpuNet`` is not
``resizable`` and the tiler keeps the card's tile. Tensors (shape, dtype,
quantisation) are read from the model file as on the CPU, so encode and decode
are the CPU path's own.

LiteRT logs at INFO on stdout and stderr whenever it builds or destroys an accelerator and
exports no switch for it; what it says while a model compiles is captured (its
adapter line becomes ``adapter``, its errors our one-line message), and what it
says when the process ends is dropped.
"""
from __future__ import annotations

import atexit
import ctypes
import gc
import logging
import os
import re
import sys
from pathlib import Path

import numpy as np

from ..core.errors import ModelError
from .backend import backend
from .interpreter import Net, native_output, tensor_spec

log = logging.getLogger(__name__)

VULKAN_LOADER = "libvulkan.so.1"
_ADAPTER = re.compile(r"Selected adapter: ([^\n]+)")


class GpuUnavailable(ModelError):
    """The GPU path cannot run here; ``reason`` names what is missing, for ``auto``'s one line."""

    def __init__(self, path: str | Path | None, reason: str):
        self.reason = reason
        super().__init__(path, f"cannot run on the GPU: {reason}")


class GpuNet(Net):
    """A .tflite model compiled for the GPU; ``adapter`` is the device Dawn selected."""

    accelerator = "gpu"
    resizable = False

    _model = None

    def __init__(self, path: Path):
        _check_loader(path)
        try:
            from ai_edge_litert.compiled_model import CompiledModel
            from ai_edge_litert.hardware_accelerator import HardwareAccelerator
        except ImportError:  # older LiteRT, or tflite-runtime: an interpreter only
            raise GpuUnavailable(path, "the installed LiteRT has no GPU accelerator (ai-edge-litert 2.3 has: "
                                       'pip install -U "ai-edge-litert>=2.3")') from None

        _quiet_at_exit()
        failure = None
        with native_output() as native:
            try:
                self._model = CompiledModel.from_file(str(path), hardware_accel=HardwareAccelerator.GPU)
                fully = self._model.is_fully_accelerated()
                self._inputs = self._model.create_input_buffers(0)
                self._outputs = self._model.create_output_buffers(0)
                # tensor details only, nothing allocated
                interpreter = backend().interpreter(model_path=str(path))
            except RuntimeError as exc:
                failure = _unavailable(path, native.read(), exc)
            if failure:
                gc.collect()  # the failed attempt's LiteRT environment goes now, its goodbyes captured
            said = native.read()
        if failure:
            raise failure
        if not fully:
            raise GpuUnavailable(path, "LiteRT could not put every operation of this model on the GPU")
        found = _ADAPTER.search(said)
        self.adapter = found.group(1).strip() if found else "unknown adapter"
        self.software = "adapterType=CPU" in self.adapter
        self.path = path
        self.threads = 1
        self._warm = False
        (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
        self.input, self.output = tensor_spec(inp), tensor_spec(out)
        self._out_size = int(np.prod(self.output.shape))
        log.info("%s compiled for the GPU on %s", path, self.adapter)

    def close(self) -> None:
        """Release the GPU now, LiteRT's goodbyes captured."""
        if self._model is None:
            return
        with native_output():
            self._model = self._inputs = self._outputs = None
            gc.collect()

    def __del__(self) -> None:
        self.close()

    def resize(self, tile: int) -> None:
        if tile != self.tile:
            raise ModelError(self.path, f"the GPU runs this model on its {self.tile} x {self.tile} tiles only, "
                                        f"not {tile} x {tile}")

    def invoke(self, tile: np.ndarray) -> np.ndarray:
        if self._warm:
            return self._run(tile)
        with native_output():  # the first copy in sets up one more LiteRT environment, and says so
            raw = self._run(tile)
        self._warm = True
        return raw

    def _run(self, tile: np.ndarray) -> np.ndarray:
        self._inputs[0].write(np.ascontiguousarray(tile[np.newaxis, :, :, np.newaxis]))
        self._model.run_by_index(0, self._inputs, self._outputs)
        raw = self._outputs[0].read(self._out_size, np.dtype(self.output.dtype))
        return raw.reshape(self.output.shape)[0, :, :, 0]


def _check_loader(path: Path) -> None:
    """Dawn reaches the GPU through the Vulkan loader on Linux; without it, say so before LiteRT
    prints a page of warnings (macOS goes through Metal, Windows ships the loader)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(VULKAN_LOADER)
    except OSError:
        raise GpuUnavailable(path, f"no Vulkan loader ({VULKAN_LOADER}; on Debian or Ubuntu: "
                                   "apt install libvulkan1, plus the GPU's Vulkan driver)") from None


def _unavailable(path: Path, said: str, exc: RuntimeError) -> GpuUnavailable:
    """LiteRT's wordy failure as one line: the known causes by name, else its first error."""
    if "No adapters found" in said:
        return GpuUnavailable(path, "no GPU adapter (Vulkan found no device: is the GPU's Vulkan driver "
                                    "installed, e.g. NVIDIA's or mesa-vulkan-drivers?)")
    errors = [line.strip() for line in said.splitlines() if line.startswith(("ERROR", "E0000"))]
    detail = errors[0] if errors else " ".join(str(exc).split())
    return GpuUnavailable(path, f"LiteRT's GPU accelerator failed ({detail[:300]})")


_quieted = False


def _quiet_at_exit() -> None:
    """Drop what LiteRT writes to stderr while the process ends (its accelerators' destruction),
    after everything of ours has been said: atexit runs before objects are torn down."""
    global _quieted
    if _quieted:
        return
    _quieted = True

    def silence() -> None:
        sys.stderr.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)

    atexit.register(silence)
