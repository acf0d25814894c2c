"""Tiling is exact: stitched central crops equal one pass over the whole padded slice."""
import numpy as np
import pytest
from scipy import ndimage as ndi

from emseg_lite.runtime.engine.tiling import TileGrid, gather, reflect_indices


@pytest.mark.parametrize("size", [1, 2, 3, 7, 50])
@pytest.mark.parametrize("start,length", [(-40, 130), (-3, 9), (0, 5)])
def test_reflect_indices_match_numpy_reflect(size, start, length):
    axis = np.arange(size)
    pad = max(0, -start), max(0, start + length - size)
    expected = np.pad(axis, pad, mode="reflect" if size > 1 else "edge")[start + pad[0] : start + pad[0] + length]
    np.testing.assert_array_equal(axis[reflect_indices(start, length, size)], expected)


def _local_network(x: np.ndarray, align: int) -> np.ndarray:
    """A stand-in network: 'same'-padded ops with receptive field radius 6 and a 2x pooling grid."""
    y = ndi.uniform_filter(x, size=5, mode="constant")
    pooled = y.reshape(y.shape[0] // align, align, y.shape[1] // align, align).max(axis=(1, 3))
    up = np.kron(pooled, np.ones((align, align)))
    return ndi.uniform_filter(up * x, size=3, mode="constant")


@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (64, 64), (100, 37), (130, 257)])
def test_tiled_equals_whole_image(shape):
    rng = np.random.default_rng(0)
    image = rng.random(shape).astype(np.float64)
    grid = TileGrid(tile=32, halo=8, align=2)
    result = np.full(shape, np.nan)
    for tile in grid.tiles(*shape):
        out = _local_network(gather(image, tile), 2)
        result[tile.y : tile.y + tile.height, tile.x : tile.x + tile.width] = grid.crop(out, tile)
    ph, pw = grid.padded_shape(*shape)
    rows = reflect_indices(-grid.halo, ph, shape[0])
    cols = reflect_indices(-grid.halo, pw, shape[1])
    whole = _local_network(image[np.ix_(rows, cols)], 2)[grid.halo : grid.halo + shape[0], grid.halo : grid.halo + shape[1]]
    assert not np.isnan(result).any()
    np.testing.assert_allclose(result, whole, atol=1e-12)


def test_tile_count_and_memory_are_per_tile():
    grid = TileGrid(tile=576, halo=32, align=16)
    assert grid.count(20000, 20000) == 40 * 40
    first = next(grid.tiles(20000, 20000))
    assert first.rows.shape == (576,) and first.cols.shape == (576,)


def test_grid_refuses_misaligned_tiles():
    with pytest.raises(ValueError, match="multiples of 16"):
        TileGrid(tile=100, halo=10, align=16)
