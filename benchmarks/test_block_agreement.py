"""How far block-wise masks are from a whole-section pass, by watershed context.

The watershed is not strictly local (``blocks``), so masks made block by block
can differ from one pass over the section near block borders. Recorded per
context: pixel agreement with the whole-section mask, and V_rand against the
labels (ISBI validation sections 25-29, awkward 144-px blocks) or against the
whole-section mask (a 4096 x 4096 mosaic of vnc-stack2, 1504-px blocks).
The time is that of the block-wise post-processing.
"""
from __future__ import annotations

import numpy as np
import pytest

from emseg_lite.runtime.pipelines.blocks import BlockPlan
from emseg_lite.runtime.pipelines.segmenter import Segmenter
from emseg_lite.runtime.post.metrics import rand_and_info
from emseg_lite.runtime.post.postprocess import membrane_mask

from .mosaic import TILE, band, variants

CONTEXTS = (0, 16, 32, 64, 128)


def blockwise_membrane(probability: np.ndarray, post, size: int, context: int) -> np.ndarray:
    membrane = np.empty(probability.shape, bool)
    for block in BlockPlan(size, context, 16).blocks(*probability.shape):
        window = membrane_mask(probability[block.window.slices], post)
        membrane[block.core.slices] = window[block.core.within(block.window)]
    return membrane


@pytest.fixture(scope="module")
def maps(data_root):
    from emseg_lite.runtime.pipelines.datasets import load_labeled, locate

    segmenter = Segmenter.load("int8", threads=2)
    volume = load_labeled(*locate(data_root)).select([25, 26, 27, 28, 29])
    isbi = [(segmenter.probabilities(image), truth) for image, truth in zip(volume.images, volume.membrane)]
    parts = variants(data_root)
    mosaic = np.concatenate([band(parts, row, 4 * TILE) for row in range(4)])
    segmenter.use_tile(1120)
    post = segmenter.card.postprocessing
    probability = segmenter.probabilities(mosaic)
    wholes = [membrane_mask(p, post) for p, _ in isbi]  # the references, the same for every context
    v_rand_whole = float(np.mean([rand_and_info(w, t)[0] for w, (_, t) in zip(wholes, isbi)]))
    return post, isbi, wholes, v_rand_whole, probability, membrane_mask(probability, post)


@pytest.mark.parametrize("context", CONTEXTS)
def test_isbi_validation(benchmark, record, maps, context):
    post, isbi, wholes, v_rand_whole, _, _ = maps
    blocks = benchmark.pedantic(lambda: [blockwise_membrane(p, post, 144, context) for p, _ in isbi], rounds=1)
    agreement = float(np.mean([np.mean(b == w) for b, w in zip(blocks, wholes)]))
    v_rand = np.mean([rand_and_info(b, t)[0] for b, (_, t) in zip(blocks, isbi)])
    record(origin="embedded", variant=f"int8, context {context}", threads=1, block_agreement=agreement,
           v_rand_blockwise=float(v_rand), v_rand_whole=v_rand_whole)


@pytest.mark.parametrize("context", CONTEXTS)
def test_vnc_mosaic(benchmark, record, maps, context):
    post, _, _, _, probability, whole = maps
    membrane = benchmark.pedantic(blockwise_membrane, args=(probability, post, 1504, context), rounds=1)
    record(origin="embedded", variant=f"int8, context {context}", threads=1,
           block_agreement=float(np.mean(membrane == whole)), v_rand_vs_whole=rand_and_info(membrane, whole)[0])
