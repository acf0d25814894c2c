"""Region ids do not change where blocks meet (``post.seams``), on real sections.

The property: the ids of a section segmented block by block are exactly the
4-connected components of its written membrane map, whatever the block size --
identical up to relabelling to one labelling of the whole section. With the
threshold post-processing, which is local, the block-wise map is the whole
section's, so the ids equal a whole-section pass up to relabelling as well.
Sections of vnc-stack2 (1024 px, ~470 cells) in blocks of 128-333 px put a seam
through every few cells.
"""
import numpy as np
import pytest

from emseg_lite.runtime.formats.reader import read_slices
from emseg_lite.runtime.pipelines.regionids import PageIds
from emseg_lite.runtime.pipelines.segmenter import Segmenter, segment_blocks
from emseg_lite.runtime.post.regions import label
from emseg_lite.runtime.post.seams import Edges, Merge, seam_pairs

BLOCKS = (128, 200, 333)


@pytest.fixture(scope="module")
def segmenter():
    return Segmenter.load("int8", threads=2)


@pytest.fixture(scope="module")
def sections(data_root):
    return np.stack([read_slices(data_root / "vnc-stack2" / f"0{i}.tif").pages[0] for i in range(2)])


def segmented(segmenter, pages, post, block=None):
    """(membrane bool, region ids uint32) of a stack, block by block through ``PageIds``."""
    membrane = np.zeros(pages.shape, bool)
    ids = np.zeros(pages.shape, np.uint32)
    pages_ids: dict[int, PageIds] = {}
    blocks = 0
    for done in segment_blocks(segmenter, pages, post, block, keep_regions=True):
        z = done.page.index
        if z not in pages_ids:
            if z - 1 in pages_ids:
                pages_ids[z - 1].finish()
            pages_ids[z] = PageIds(ids[z], pages_ids[z - 1].last if z - 1 in pages_ids else 0)
        pages_ids[z].put(done)
        membrane[(z, *done.block.core.slices)] = done.membrane
        blocks += 1
    pages_ids[len(pages) - 1].finish()
    return membrane, ids, blocks


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when ``a`` and ``b`` differ only by the names of their labels."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1).shape[1]
    return pairs == np.unique(a).size == np.unique(b).size


def components(membrane: np.ndarray) -> np.ndarray:
    return label(~membrane)[0]


@pytest.mark.parametrize("method", ["none", "watershed"])
@pytest.mark.parametrize("block", BLOCKS)
def test_blockwise_ids_are_the_components_of_the_written_map(segmenter, sections, block, method):
    post = segmenter.postprocessing(method)
    membrane, ids, blocks = segmented(segmenter, sections, post, block)
    assert blocks >= 2 * 16
    for z in range(len(sections)):
        assert same_partition(ids[z], components(membrane[z])), f"section {z}: ids change at a seam"
        assert np.array_equal(ids[z] == 0, membrane[z])
    first, second = (set(np.unique(ids[z])) - {0} for z in range(2))
    assert not first & second, "ids repeat across sections"
    counts = [len(np.unique(ids[z])) - 1 for z in range(2)]
    assert int(ids.max()) == sum(counts), "ids are not consecutive"
    assert min(counts) > 300


@pytest.mark.parametrize("block", BLOCKS)
def test_with_a_local_post_processing_blocks_equal_the_whole_section(segmenter, sections, block):
    post = segmenter.postprocessing("none")
    whole_membrane, whole_ids, whole_blocks = segmented(segmenter, sections, post)
    membrane, ids, _ = segmented(segmenter, sections, post, block)
    assert whole_blocks == len(sections)
    np.testing.assert_array_equal(membrane, whole_membrane)
    for z in range(len(sections)):
        assert same_partition(ids[z], whole_ids[z])


def test_rewriting_twice_changes_nothing(segmenter, sections):
    """What a resumed volume relies on: roots are the smallest ids, so a second pass is a no-op."""
    post = segmenter.postprocessing("none")
    size = 256
    edges, stored = {}, {}
    for done in segment_blocks(segmenter, sections[:1], post, size, keep_regions=True):
        first = (done.block.row * 4 + done.block.col) * size * size  # as a volume numbers blocks
        block_ids = np.where(done.regions > 0, done.regions.astype(np.int64) + first, 0)
        edges[done.block.row, done.block.col] = Edges.of(block_ids)
        stored[done.block.row, done.block.col] = (block_ids, first, done.region_count)
    merge = Merge.of(seam_pairs(edges))
    assert merge.keys.size > 100
    for block_ids, first, count in stored.values():
        part = merge.within(first, size * size - 1)
        once = part.apply(block_ids, first, count)
        np.testing.assert_array_equal(part.apply(once, first, count), once)
        assert np.array_equal(once == 0, block_ids == 0) and (once <= block_ids).all()


def test_edges_survive_the_volume_store_padding():
    ids = np.arange(1, 13, dtype=np.uint32).reshape(3, 4)
    back = Edges.unstacked(Edges.of(ids).stacked(6), 3, 4)
    for name, line in (("top", ids[0]), ("bottom", ids[-1]), ("left", ids[:, 0]), ("right", ids[:, -1])):
        np.testing.assert_array_equal(getattr(back, name), line)
