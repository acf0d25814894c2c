"""The plugin's work, free of Qt: segmenting a layer's pixels and fine-tuning on corrections.

Both are generators, so that the widget runs them in a napari worker thread,
shows each yield as progress and stops between two yields when the user cancels.
Segmenting goes through ``pipelines.segmenter.segment_blocks`` -- the plan, tiles
and post-processing of ``emseg-lite segment`` -- so a layer's masks equal the
command's for the same pixels. Fine-tuning runs ``emseg_lite.train.finetune`` and
``emseg_lite.export`` (what ``make finetune`` and ``make export`` run) in a child
process: TensorFlow stays out of the viewer's process, and a cancel can kill it.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Generator

import numpy as np

from ..core.card import ModelCard, PostProcessing
from ..core.errors import EmsegError
from ..pipelines.regionids import PageIds
from ..pipelines.segmenter import Segmenter, block_count, segment_blocks

TRAIN_EXTRA = ("tensorflow", "tf_keras", "tensorflow_model_optimization")


@dataclass
class Segmented:
    """A stack's results, each (z, y, x): ``membrane`` uint8 (1 = membrane, 0 = cell),
    ``probability`` float32 membrane probability in [0, 1], ``regions`` uint32 ids
    of the regions (the 4-connected cell pixels of each section; 0 on membrane),
    unique across the stack and seamless across blocks; ``neurons`` uint64 ids of
    3-D objects when asked for, 0 on membrane as the regions are (so that both edit alike)."""

    membrane: np.ndarray
    probability: np.ndarray
    regions: np.ndarray
    neurons: np.ndarray | None = None


def segment_stack(segmenter: Segmenter, pages: np.ndarray, post: PostProcessing,
                  neurons: bool = False) -> Generator[tuple[int, int] | str, None, Segmented]:
    """Segment ``pages`` (z, y, x), yielding (blocks done, blocks in all) after each block;
    then, with ``neurons``, a line of status and the stack's 3-D neurons (``neurons_of``)."""
    total = block_count(segmenter, pages, post)
    result = Segmented(np.zeros(pages.shape, np.uint8), np.zeros(pages.shape, np.float32),
                       np.zeros(pages.shape, np.uint32))
    ids, open_page = None, None
    blocks = segment_blocks(segmenter, pages, post, keep_probability=True, keep_regions=True)
    for done, finished in enumerate(blocks, start=1):
        z = finished.page.index
        where = (z, *finished.block.core.slices)
        result.membrane[where] = finished.membrane
        result.probability[where] = finished.probability
        if z != open_page:
            ids, open_page = _next_page(ids, result.regions, z), z
        ids.put(finished)
        yield done, total
    if ids is not None:
        ids.finish()
    if neurons:
        yield "3-D neurons…"
        result.neurons = np.where(result.membrane == 1, np.uint64(0), neurons_of(result.probability, segmenter.card))
    return result


def neurons_of(probability: np.ndarray, card: ModelCard) -> np.ndarray:
    """A stack's 3-D neurons: the objects step of ``volume --neurons`` (``post.objects``) on
    one block, the whole stack, at the card's threshold. A layer says nothing of its voxel
    size, so the stack is taken for serial sections (``--voxels anisotropic``, the card's
    ``serial_pool``): on the sections' own pixel neurons leak through z."""
    from ..post.objects import fragments_and_merges, pooled, unpooled

    pool = card.objects.serial_pool
    working = pooled(probability, pool)
    fragments, history = fragments_and_merges(working, 0, card.objects.scoring)
    cells = history.merge(card.objects.threshold).apply(fragments, 0, int(fragments.max()), renumber=True)
    return unpooled(cells, pool, *probability.shape[1:], np.uint64, working)


def missing_volume_extra() -> str | None:
    """The one line to show when 3-D neurons cannot be made here (waterz, the volume extra); else None."""
    if importlib.util.find_spec("waterz") is not None:
        return None
    return '3-D neurons need the volume extra (waterz is missing): pip install "emseg-lite[volume]"'


def _next_page(ids: PageIds | None, regions: np.ndarray, z: int) -> PageIds:
    """Close the page before (its seams joined) and start page ``z`` after its last id."""
    if ids is None:
        return PageIds(regions[z])
    ids.finish()
    return PageIds(regions[z], ids.last)


def missing_train_extra() -> str | None:
    """What fine-tuning needs and this installation lacks, as the one line to show; else None."""
    absent = [name for name in TRAIN_EXTRA if importlib.util.find_spec(name) is None]
    if not absent:
        return None
    return (f"fine-tuning needs the train extra ({', '.join(absent)} missing): "
            'pip install "emseg-lite[train]", then restart napari')


class Finetune:
    """Fine-tune the shipped model on the sections in ``images`` + ``labels`` (folders of
    matching files) into ``run`` and export it to ``models``, in child processes.

    ``steps()`` yields each line of their output and returns the new int8 model.
    ``cancel()`` kills the running child at once: a worker's own abort is only seen
    between two lines, and a training epoch can print nothing for minutes.
    ``quick``: a few tiny steps and no agreement gate, which checks the pipeline,
    not the model.
    """

    def __init__(self, images: Path, labels: Path, membrane_value: int, run: Path, models: Path,
                 quick: bool = False):
        self.models = models
        self.commands = [
            [sys.executable, "-m", "emseg_lite.train.finetune", "--images", str(images), "--labels", str(labels),
             "--label-kind", "membrane", "--membrane-value", str(membrane_value), "--out", str(run),
             *(["--quick"] if quick else [])],
            [sys.executable, "-m", "emseg_lite.export", str(run), "--out", str(models),
             *(["--min-agreement", "0"] if quick else [])],
        ]
        self.process: subprocess.Popen | None = None
        self.cancelled = False

    def steps(self) -> Generator[str, None, Path | None]:
        for command in self.commands:
            yield from self._run(command)
            if self.cancelled:
                return None
        return self.models / "emseg-int8.tflite"

    def cancel(self) -> None:
        self.cancelled = True
        if self.process is not None and self.process.poll() is None:
            self.process.kill()

    def _run(self, command: list[str]) -> Generator[str, None, None]:
        """Run ``command``, yielding its output line by line; killed if the caller stops listening."""
        if self.cancelled:
            return
        self.process = process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                  text=True, bufsize=1)
        last = deque(maxlen=1)
        try:
            for line in process.stdout:
                line = line.rstrip()
                if line:
                    last.append(line)
                    yield line
            code = process.wait()
            if self.cancelled:
                yield "cancelled"  # the worker sees its abort at this yield
            elif code != 0:
                raise EmsegError(None, last[0] if last else f"{command[2]} failed (exit code {code})")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
