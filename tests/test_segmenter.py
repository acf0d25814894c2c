"""Segmenter internals that the CLI tests cannot see."""
import numpy as np
import pytest

from emseg_lite.runtime.formats.reader import read_slices
from emseg_lite.runtime.pipelines.segmenter import Segmenter


@pytest.mark.parametrize("variant", ["int8", "float32"])
def test_integer_slices_through_the_lookup_table_equal_the_float_path(variant, test_slice):
    # 8/16-bit slices are encoded by a table of every grey level; floats by arithmetic per tile.
    segmenter = Segmenter.load(variant, threads=2)
    image = read_slices(test_slice).pages[0]
    assert image.dtype == np.uint8
    for pixels in (image, image.astype(np.uint16) * 257 + 3):
        np.testing.assert_array_equal(segmenter.probabilities(pixels),
                                      segmenter.probabilities(pixels.astype(np.float32)))
