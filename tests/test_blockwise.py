"""Block-wise == whole-section, on real data, the way dask-image tests its filters:
the same operation over blocks of awkward sizes against one pass over everything.

Probabilities must be bit-identical (the card's halo covers the network's reach);
masks, where the watershed's non-local flooding is cut by a finite context, must
agree on >= 99.9 % of pixels with V_rand against the labels within 0.001.
"""
from pathlib import Path

import numpy as np
import pytest

from emseg_lite.runtime.core.geometry import Block, Region
from emseg_lite.runtime.formats.reader import read_slices
from emseg_lite.runtime.formats.section import ArraySection
from emseg_lite.runtime.pipelines import blocks
from emseg_lite.runtime.pipelines.blocks import BlockPlan, pieces, plan_section
from emseg_lite.runtime.pipelines.blockwise import finish_block, infer_block, plan_for, prepare_page
from emseg_lite.runtime.pipelines.datasets import load_labeled, locate
from emseg_lite.runtime.pipelines.segmenter import Segmenter, block_count, segment_blocks
from emseg_lite.runtime.post.metrics import rand_and_info
from emseg_lite.runtime.post.postprocess import membrane_mask
from emseg_lite.runtime.post.regions import label

MIN_AGREEMENT = 0.999
MAX_V_RAND_CHANGE = 0.001


@pytest.fixture(scope="module")
def segmenter():
    return Segmenter.load("int8", threads=2)


@pytest.fixture(scope="module")
def validation(isbi):
    return load_labeled(*locate(isbi)).select([25, 26, 27, 28, 29])


@pytest.fixture(scope="module")
def mosaic(data_root):
    """4 x 4 real vnc-stack2 sections (4096 x 4096 px): the four sections, each in four orientations."""
    pages = [read_slices(data_root / "vnc-stack2" / f"0{i}.tif").pages[0] for i in range(4)]
    rows = [[np.rot90(pages[(r + c) % 4], k=r) for c in range(4)] for r in range(4)]
    return np.block(rows)


def blockwise(segmenter, image, block, post=None):
    """Membrane map and probabilities of ``image`` assembled from ``block``-px blocks."""
    post = post or segmenter.card.postprocessing
    plan = plan_for(segmenter.card, *image.shape, post, block)
    page = prepare_page(segmenter, ArraySection(Path("array"), image[np.newaxis]), 0, plan)
    membrane = np.empty(image.shape, bool)
    probability = np.empty(image.shape, np.float32)
    for part in page.blocks:
        done = finish_block(infer_block(segmenter, page, part), post, keep_probability=True)
        membrane[part.core.slices] = done.membrane
        probability[part.core.slices] = done.probability
    return membrane, probability, page.plan


def test_a_stack_in_memory_goes_block_by_block_section_by_section(segmenter, validation):
    """What the napari plugin segments: every block of every page once, counted beforehand,
    each page the same as that section segmented alone."""
    pages = np.stack(validation.images[:2])
    post = segmenter.card.postprocessing
    done = list(segment_blocks(segmenter, pages, post, block=256, keep_probability=True))
    assert len(done) == block_count(segmenter, pages, post, block=256) >= 8
    for index in range(2):
        covered, membrane = np.zeros(pages.shape[1:], int), np.zeros(pages.shape[1:], bool)
        for finished in (d for d in done if d.page.index == index):
            covered[finished.block.core.slices] += 1
            membrane[finished.block.core.slices] = finished.membrane
        assert (covered == 1).all()
        np.testing.assert_array_equal(segmenter.to_mask(membrane), segmenter.segment(pages[index], block=256))


@pytest.mark.parametrize("block", [144, 208, 336])
def test_isbi_validation_blockwise_equals_whole(segmenter, validation, block):
    post = segmenter.card.postprocessing
    for image, truth in zip(validation.images, validation.membrane):
        whole_probability = segmenter.probabilities(image)
        whole = membrane_mask(whole_probability, post)
        membrane, probability, plan = blockwise(segmenter, image, block)
        assert plan.count(*image.shape) >= 4 and plan.context > 0
        np.testing.assert_array_equal(probability, whole_probability)
        assert np.mean(membrane == whole) >= MIN_AGREEMENT
        assert abs(rand_and_info(membrane, truth)[0] - rand_and_info(whole, truth)[0]) <= MAX_V_RAND_CHANGE


def test_mosaic_blockwise_equals_whole(segmenter, mosaic):
    """Awkward 1504-px blocks (post-processed in 752-px pieces) over a 4096-px mosaic, as a big
    section is cut (its default fits one block)."""
    assert plan_section(*mosaic.shape, 16, 48, 608, True).count(*mosaic.shape) == 1
    segmenter.use_tile(plan_section(*mosaic.shape, 16, 48, 608, True).tile)
    try:
        whole_probability = segmenter.probabilities(mosaic)
        membrane, probability, _ = blockwise(segmenter, mosaic, 1504)
    finally:
        segmenter.use_tile(segmenter.card.tiling.tile)
    np.testing.assert_array_equal(probability, whole_probability)
    whole = membrane_mask(whole_probability, segmenter.card.postprocessing)
    assert np.mean(membrane == whole) >= MIN_AGREEMENT
    assert rand_and_info(membrane, whole)[0] >= 1 - MAX_V_RAND_CHANGE


def test_small_sections_are_one_block_and_exactly_one_pass(segmenter, validation):
    image = validation.images[0]
    membrane, _, plan = blockwise(segmenter, image, None)
    assert plan.count(*image.shape) == 1
    np.testing.assert_array_equal(membrane, membrane_mask(segmenter.probabilities(image), segmenter.card.postprocessing))
    np.testing.assert_array_equal(segmenter.segment(image), segmenter.to_mask(membrane))


def test_larger_tiles_give_identical_probabilities(segmenter, vnc_tiff):
    image = read_slices(vnc_tiff).pages[0]
    reference = segmenter.probabilities(image)
    for tile in (1120, 800):
        segmenter.use_tile(tile)
        try:
            np.testing.assert_array_equal(segmenter.probabilities(image), reference)
        finally:
            segmenter.use_tile(segmenter.card.tiling.tile)


@pytest.mark.parametrize("side,watershed,blocks,tile", [
    (512, True, 1, 608), (1024, True, 1, 1120), (6144, True, 4, 1152), (6144, False, 4, 1120),
    (20000, True, 49, 1072), (20000, False, 49, 1056), (30000, True, 100, 1120)])
def test_plans_balance_blocks_and_tiles(side, watershed, blocks, tile):
    """Equal blocks, each window a whole number of tiles (no thin last block costing whole tiles)."""
    plan = plan_section(side, side, 16, 48, 608, watershed)
    assert (plan.count(side, side), plan.tile) == (blocks, tile)
    window = min(side, plan.size + 2 * plan.context)
    core = plan.tile - 96
    assert window <= -(-window // core) * core < window + core


def test_block_plan_geometry():
    plan = BlockPlan(size=96, context=32, align=16)
    blocks = plan.blocks(250, 130)
    assert plan.shape(250, 130) == (3, 2) and len(blocks) == 6
    assert blocks[0].core == Region(0, 0, 96, 96) and blocks[0].window == Region(0, 0, 128, 128)
    assert blocks[4].core == Region(192, 0, 250, 96) and blocks[4].window == Region(160, 0, 250, 128)
    covered = np.zeros((250, 130), int)
    for block in blocks:
        covered[block.core.slices] += 1
        assert block.window.y0 % 16 == 0 and block.window.x0 % 16 == 0
    assert (covered == 1).all()
    with pytest.raises(ValueError, match="multiples of 16"):
        BlockPlan(size=100, context=32, align=16)


def test_pieces_cover_the_core_once_within_the_window():
    block = Block(1, 2, Region(1000, 2000, 3500, 2900), Region(968, 1968, 3532, 2932))
    parts = pieces(block, 32, size=1024)
    assert [(p.row, p.col) for p in parts] == [(r, c) for r in range(3) for c in range(1)]
    covered = np.zeros((4000, 4000), np.uint8)
    for part in parts:
        covered[part.core.slices] += 1
        assert max(part.core.shape) <= 1024
        w, c, b = part.window, part.core, block.window
        assert (w.y0, w.x0, w.y1, w.x1) == (max(c.y0 - 32, b.y0), max(c.x0 - 32, b.x0),
                                            min(c.y1 + 32, b.y1), min(c.x1 + 32, b.x1))
    assert covered[block.core.slices].min() == 1 and covered.sum() == block.core.height * block.core.width
    assert pieces(block, 0, size=1024) == [block]  # no context: one pass, as a single block


def test_pieces_post_process_apart_but_regions_span_them(segmenter, vnc_tiff, monkeypatch):
    """A 1024-px block post-processed in 256-px pieces: the membrane map agrees with one pass,
    and its regions are the components of the whole core's map, not cut at the pieces."""
    image = read_slices(vnc_tiff).pages[0]
    post = segmenter.card.postprocessing
    plan = plan_for(segmenter.card, *image.shape, post, 1024)
    page = prepare_page(segmenter, ArraySection(Path("array"), image[np.newaxis]), 0, plan)
    (block,) = page.blocks
    assert plan.context > 0
    inferred = infer_block(segmenter, page, block)
    monkeypatch.setattr(blocks, "POST_PIECE", 300)
    assert len(pieces(block, plan.context)) == 16
    done = finish_block(inferred, post, keep_regions=True)
    cells = label(~done.membrane)[0]
    np.testing.assert_array_equal(done.regions, cells)
    assert done.region_count == cells.max() > 300
    whole = membrane_mask(inferred.probability, post)
    assert np.mean(done.membrane == whole) >= MIN_AGREEMENT