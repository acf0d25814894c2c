"""Reading every supported image flavour, and refusing every broken one with one line."""
import struct
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image

from emseg_lite.runtime.core.errors import InputError
from emseg_lite.runtime.formats import reader


def test_reads_real_isbi_png(test_slice):
    slices = reader.read_slices(test_slice)
    assert slices.pages.shape == (1, 512, 512) and slices.pages.dtype == np.uint8
    assert not slices.is_stack and slices.notes == []
    assert 50 < slices.pages.mean() < 200


def test_reads_big_endian_imagej_tiff(vnc_tiff):
    with tifffile.TiffFile(vnc_tiff) as tif:
        assert tif.byteorder == ">" and tif.is_imagej
    slices = reader.read_slices(vnc_tiff)
    assert slices.pages.shape == (1, 1024, 1024) and slices.pages.dtype == np.uint8
    assert 50 < slices.pages.mean() < 200


def test_reads_16bit_stacks_in_both_byte_orders(vnc_tiff, tmp_path):
    page = tifffile.imread(vnc_tiff).astype(np.uint16) * 257
    stack = np.stack([page, page[::-1]])
    for order in "<>":
        path = tmp_path / f"stack{order == '>'}.tif"
        tifffile.imwrite(path, stack, byteorder=order, imagej=True, metadata={"axes": "ZYX"})
        slices = reader.read_slices(path)
        assert slices.is_stack and slices.pages.dtype == np.uint16
        np.testing.assert_array_equal(slices.pages, stack)


def test_reads_16bit_png_and_float_tiff(tmp_path):
    data16 = (np.arange(40 * 30).reshape(30, 40) * 50).astype(np.uint16)
    Image.fromarray(data16).save(tmp_path / "a.png")
    np.testing.assert_array_equal(reader.read_slices(tmp_path / "a.png").pages[0], data16)
    data32 = np.linspace(-1, 1, 30 * 40, dtype=np.float32).reshape(30, 40)
    tifffile.imwrite(tmp_path / "f.tif", data32)
    np.testing.assert_array_equal(reader.read_slices(tmp_path / "f.tif").pages[0], data32)


def test_rgb_becomes_gray_with_a_note(tmp_path):
    rgb = np.zeros((8, 9, 3), np.uint8)
    rgb[..., 1] = 200
    Image.fromarray(rgb).save(tmp_path / "c.png")
    Image.fromarray(rgb).save(tmp_path / "c.jpg", quality=100)
    for name in ("c.png", "c.jpg"):
        slices = reader.read_slices(tmp_path / name)
        assert slices.pages.shape == (1, 8, 9)
        assert abs(int(slices.pages[0, 0, 0]) - round(0.587 * 200)) <= 2
        assert slices.notes == ["RGB converted to gray"]


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that claims width x height (the shape of a decompression bomb)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")


def _broken_inputs(tmp_path, test_slice, vnc_tiff):
    png = test_slice.read_bytes()
    tif = vnc_tiff.read_bytes()
    files = {
        "missing": (tmp_path / "absent.png", "no such file"),
        "not an image": (tmp_path / "notes.png", "not an image emseg-lite can read"),
        "truncated png": (tmp_path / "cut.png", "truncated or corrupt image"),
        "truncated tiff": (tmp_path / "cut.tif", "truncated or corrupt TIFF"),
        "not a tiff": (tmp_path / "text.tif", "not a readable TIFF"),
        "zero size": (tmp_path / "empty.tif", "image is empty"),
        "complex pixels": (tmp_path / "complex.tif", "unsupported pixel type complex64"),
        "five channels": (tmp_path / "five.tif", "unsupported"),
        "bomb": (tmp_path / "bomb.png", "decompression bomb"),
    }
    files["not an image"][0].write_text("hello, not a picture\n")
    files["truncated png"][0].write_bytes(png[: len(png) // 2])
    files["truncated tiff"][0].write_bytes(tif[: len(tif) // 3])
    files["not a tiff"][0].write_text("II*\0 nonsense")
    tifffile.imwrite(files["zero size"][0], np.zeros((0, 5), np.uint8))
    tifffile.imwrite(files["complex pixels"][0], np.zeros((4, 4), np.complex64))
    tifffile.imwrite(files["five channels"][0], np.zeros((4, 4, 5), np.uint8), planarconfig="contig")
    files["bomb"][0].write_bytes(_png_header_only(60000, 60000))
    return files


@pytest.mark.parametrize("case", ["missing", "not an image", "truncated png", "truncated tiff", "not a tiff",
                                  "zero size", "complex pixels", "five channels", "bomb"])
def test_broken_input_is_one_line_naming_the_file(case, tmp_path, test_slice, vnc_tiff):
    path, problem = _broken_inputs(tmp_path, test_slice, vnc_tiff)[case]
    with pytest.raises(InputError) as info:
        reader.read_slices(path)
    message = str(info.value)
    assert message.startswith(str(path)) and problem in message and "\n" not in message


def test_pixel_limit_can_be_raised(test_slice):
    with pytest.raises(InputError, match="--max-pixels"):
        reader.read_slices(test_slice, max_pixels=512 * 511)
    assert reader.read_slices(test_slice, max_pixels=512 * 512).pages.shape == (1, 512, 512)
