"""TIFF sections read by region equal the whole image, in every layout a microscope writes."""
import numpy as np
import pytest
import tifffile

from emseg_lite.runtime.core.errors import InputError
from emseg_lite.runtime.core.geometry import Region
from emseg_lite.runtime.formats import reader, tiff
from emseg_lite.runtime.formats import section as section_io

REGIONS = [Region(0, 0, 1024, 1024), Region(0, 0, 1, 1), Region(37, 500, 300, 1024), Region(1000, 3, 1024, 777),
           Region(511, 511, 513, 513)]


@pytest.fixture(scope="module")
def page(vnc_tiff):
    return tifffile.imread(vnc_tiff)


LAYOUTS = {
    "imagej big-endian (contiguous)": dict(imagej=True, byteorder=">"),
    "strips of 37 rows": dict(rowsperstrip=37),
    "deflate strips": dict(rowsperstrip=64, compression="zlib"),
    "tiles of 128": dict(tile=(128, 128)),
    "deflate tiles, big-endian": dict(tile=(256, 128), compression="zlib", byteorder=">"),
    "one deflate strip": dict(rowsperstrip=1024, compression="zlib"),
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_regions_equal_the_whole_page(tmp_path, page, layout, dtype):
    data = np.stack([page, page[::-1, ::-1]]).astype(dtype) * (257 if dtype == np.uint16 else 1)
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, data, **LAYOUTS[layout])
    with reader.open_section(path) as section:
        assert (section.pages, section.height, section.width) == (2, 1024, 1024)
        assert section.dtype == np.dtype(dtype) and section.dtype.isnative
        for index in range(2):
            for region in REGIONS:
                np.testing.assert_array_equal(section.read(index, region), data[index][region.slices])
    np.testing.assert_array_equal(reader.read_slices(path).pages, data)


def test_rgb_tiles_become_gray_by_region(tmp_path, page):
    rgb = np.stack([page, page // 2, page[::-1]], axis=-1)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, rgb, tile=(128, 128), photometric="rgb")
    whole = section_io.to_gray(path, rgb, [])
    with reader.open_section(path) as section:
        assert section.notes == ["RGB converted to gray"]
        for region in REGIONS:
            np.testing.assert_array_equal(section.read(0, region), whole[region.slices])


def test_intensity_range_streams_to_the_whole_page_figure(tmp_path, page):
    from emseg_lite.runtime.core.card import Normalization
    from emseg_lite.runtime.engine.intensity import intensity_range, page_range

    spec = Normalization()
    for dtype in (np.uint16, np.float32):
        data = page.astype(dtype) * 3
        path = tmp_path / f"{np.dtype(dtype).name}.tif"
        tifffile.imwrite(path, data, rowsperstrip=100)
        with reader.open_section(path) as section:
            assert page_range(section, 0, spec) == intensity_range(data, spec)


def test_a_corrupt_strip_names_the_file_and_the_strip(tmp_path, page):
    path = tmp_path / "bad.tif"
    tifffile.imwrite(path, page, rowsperstrip=64, compression="zlib")
    with tifffile.TiffFile(path) as tif:
        offset = tif.pages[0].dataoffsets[5]
    raw = bytearray(path.read_bytes())
    raw[offset : offset + 64] = b"\xff" * 64
    path.write_bytes(bytes(raw))
    with reader.open_section(path) as section:
        section.read(0, Region(0, 0, 64, 1024))  # strip 0 is intact
        with pytest.raises(InputError, match=r"bad.tif: cannot decode section 0, strip 5"):
            section.read(0, Region(300, 0, 400, 10))


def test_a_compressed_page_too_big_to_decode_whole_is_refused(tmp_path, page, monkeypatch):
    path = tmp_path / "onestrip.tif"
    tifffile.imwrite(path, page, rowsperstrip=1024, compression="zlib")
    monkeypatch.setattr(tiff, "check_whole_decode", _limited(section_io.check_whole_decode, 512 * 1024))
    with pytest.raises(InputError, match=r"onestrip.tif: this TIFF's largest strip or tile can only be decoded whole"):
        reader.open_section(path)


def _limited(check, limit):
    def limited(path, nbytes, kind):
        original, section_io.WHOLE_DECODE_BYTES = section_io.WHOLE_DECODE_BYTES, limit
        try:
            check(path, nbytes, kind)
        finally:
            section_io.WHOLE_DECODE_BYTES = original
    return limited
