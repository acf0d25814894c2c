"""Threads that segment blocks side by side, each with an interpreter of its own.

LiteRT interpreters are not thread-safe, and the compiled watershed releases the
GIL, so ``segment`` runs blocks on a few threads that each hold one interpreter.
A GPU is one device: its threads share the one model compiled for it and take
turns on it (``inference``), so that while one block is on the GPU the others'
post-processing runs on the cores and the GPU does not wait for the watershed.
"""
from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

from .segmenter import Segmenter


class Workers:
    """Threads that segment blocks, one interpreter each: the caller's segmenter for the
    first, copies for the others (made when a second block runs at the same time)."""

    def __init__(self, segmenter: Segmenter, count: int):
        self.count = max(1, count)
        self._turns = threading.Lock() if segmenter.net.accelerator == "gpu" else None
        self.pool = ThreadPoolExecutor(max_workers=self.count, thread_name_prefix="emseg-block")
        self._template = segmenter
        self._spare = [segmenter]
        self._lock = threading.Lock()
        self._local = threading.local()

    def segmenter(self) -> Segmenter:
        if self._turns is not None:
            return self._template
        mine = getattr(self._local, "segmenter", None)
        if mine is None:
            with self._lock:
                mine = self._spare.pop() if self._spare else None
            self._local.segmenter = mine = mine or self._template.clone()
        return mine

    def inference(self):
        """Hold while running the network: a turn on the shared GPU, nothing on the CPU."""
        return self._turns if self._turns is not None else contextlib.nullcontext()

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, *exc) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
