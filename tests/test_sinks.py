"""Outputs written block by block: every layout round-trips, and a failure leaves nothing."""
import errno

import numpy as np
import pytest
import tifffile
from PIL import Image

from emseg_lite.runtime.core.errors import OutputError
from emseg_lite.runtime.formats import sinks
from emseg_lite.runtime.pipelines.blocks import BlockPlan


def write_blocks(sink, data, block=176):
    plan = BlockPlan(size=block, context=0, align=16)
    for page in range(data.shape[0]):
        for part in plan.blocks(*data.shape[1:3]):
            sink.write(page, part.core, data[page][part.core.slices])
        sink.end_page(page)


def test_layout_by_size():
    assert sinks.layout(1, 512, 512) == "png" and sinks.layout(3, 512, 512) == "stack"
    assert sinks.layout(1, 9000, 9000) == "tiled" and sinks.suffix("tiled") == ".tif"


@pytest.mark.parametrize("kind,pages,rgb", [("png", 1, False), ("png", 1, True), ("stack", 3, False),
                                            ("tiled", 2, False), ("tiled", 1, True)])
def test_round_trip(tmp_path, kind, pages, rgb):
    rng = np.random.default_rng(0)
    shape = (pages, 700, 1100, 3) if rgb else (pages, 700, 1100)
    data = rng.integers(0, 256, shape, dtype=np.uint8)
    path = tmp_path / f"out{sinks.suffix(kind)}"
    sink = sinks.open_sink(kind, path, pages, 700, 1100, np.uint8, rgb=rgb, compress=True)
    write_blocks(sink, data)
    assert not path.exists()
    sink.commit()
    written = np.array(Image.open(path))[np.newaxis] if kind == "png" else tifffile.imread(path)
    np.testing.assert_array_equal(written.reshape(shape), data)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    if kind == "tiled":
        with tifffile.TiffFile(path) as tif:
            assert tif.pages[0].is_tiled and tif.pages[0].compression == 8  # deflate


def test_float_probabilities_round_trip_tiled(tmp_path):
    data = np.random.default_rng(1).random((1, 600, 530), dtype=np.float32)
    sink = sinks.open_sink("tiled", tmp_path / "p.tif", 1, 600, 530, np.float32)
    write_blocks(sink, data, block=224)
    sink.commit()
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "p.tif"), data[0])


def test_abort_leaves_nothing(tmp_path):
    for kind in ("png", "stack", "tiled"):
        sink = sinks.open_sink(kind, tmp_path / f"a{sinks.suffix(kind)}", 2, 600, 600, np.uint8)
        write_blocks(sink, np.zeros((1, 600, 600), np.uint8))
        sink.abort()
    assert list(tmp_path.iterdir()) == []


def test_disk_full_while_writing_is_one_error_and_no_file(tmp_path, monkeypatch):
    real_imwrite = tifffile.imwrite

    def fills_up(path, data=None, **kwargs):
        def some_then_full():
            for count, item in enumerate(data):
                if count == 3:
                    raise OSError(errno.ENOSPC, "No space left on device")
                yield item
        return real_imwrite(path, data=some_then_full(), **kwargs)

    monkeypatch.setattr(tifffile, "imwrite", fills_up)
    sink = sinks.open_sink("tiled", tmp_path / "m.tif", 1, 4000, 4000, np.uint8, compress=True)
    with pytest.raises(OutputError, match=r"m.tif: cannot write \(No space left on device\)"):
        write_blocks(sink, np.zeros((1, 4000, 4000), np.uint8), block=1024)
        sink.commit()
    assert list(tmp_path.iterdir()) == []
