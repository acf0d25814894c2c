"""The file formats microscopes write: MRC stacks, compressed TIFFs, and their pixel sizes."""
import subprocess
import sys
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import tifffile
from PIL import Image

from emseg_lite.runtime.core.errors import InputError
from emseg_lite.runtime.core.geometry import Region
from emseg_lite.runtime.formats import reader
from emseg_lite.runtime.pipelines import outputs

CLI = str(Path(sys.executable).parent / "emseg-lite")
REGION = Region(100, 37, 900, 1001)


@pytest.fixture(scope="module")
def pages(data_root):
    return np.stack([tifffile.imread(data_root / "vnc-stack2" / f"0{i}.tif") for i in range(3)])


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.float32, np.uint16])  # MRC modes 0, 1, 2, 6
def test_mrc_stack_reads_by_region_with_its_voxel_size(tmp_path, pages, dtype):
    data = (pages.astype(np.int16) - 128).astype(dtype) if dtype == np.int8 else pages.astype(dtype) * 3
    path = tmp_path / "stack.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = 46.0  # Å, as SerialEM writes it
    assert outputs.count_pixels(path) == 3 * 1024 * 1024  # from the header: the progress bar's total
    with reader.open_section(path) as section:
        assert (section.pages, section.height, section.width) == (3, 1024, 1024)
        assert section.dtype == np.dtype(dtype) and section.pixel_size_nm == pytest.approx(4.6)
        for page in range(3):
            np.testing.assert_array_equal(section.read(page, REGION), data[page][REGION.slices])


def test_segment_an_mrc_stack_keeps_the_pixel_size(tmp_path, pages):
    path = tmp_path / "serialem.st"
    with mrcfile.new(path) as mrc:
        mrc.set_data(pages)
        mrc.voxel_size = 46.0
    result = subprocess.run([CLI, "segment", str(path), "-q"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    with tifffile.TiffFile(tmp_path / "serialem_mask.tif") as tif:
        assert tif.series[0].shape == (3, 1024, 1024) and tif.imagej_metadata["unit"] == "nm"
        numerator, denominator = tif.pages[0].tags["XResolution"].value
        assert denominator / numerator == pytest.approx(4.6, rel=1e-4)


@pytest.mark.parametrize("compression", ["tiff_lzw", "tiff_adobe_deflate", "packbits", "jpeg"])
def test_tiffs_as_pillow_and_microscopes_compress_them(tmp_path, pages, compression):
    path = tmp_path / f"{compression}.tif"
    Image.fromarray(pages[0]).save(path, compression=compression)
    expected = np.asarray(Image.open(path))
    np.testing.assert_array_equal(reader.read_slices(path).pages[0], expected)
    if compression != "jpeg":
        np.testing.assert_array_equal(expected, pages[0])


def test_zstd_tiles_read_by_region(tmp_path, pages):
    path = tmp_path / "zstd.tif"
    tifffile.imwrite(path, pages, tile=(256, 256), compression="zstd", photometric="minisblack")
    with reader.open_section(path) as section:
        np.testing.assert_array_equal(section.read(2, REGION), pages[2][REGION.slices])


_WITHOUT_IMAGECODECS = """
import sys
sys.modules["imagecodecs"] = None
from emseg_lite.runtime.formats import reader
from emseg_lite.runtime.core.errors import InputError
try:
    print(reader.read_slices(sys.argv[1]).pages.sum())
except InputError as exc:
    print("InputError", exc)
"""


def test_without_imagecodecs_pillow_decodes_lzw_and_a_missing_codec_is_named(tmp_path, pages):
    lzw, zstd = tmp_path / "lzw.tif", tmp_path / "zstd.tif"
    Image.fromarray(pages[0]).save(lzw, compression="tiff_lzw")
    tifffile.imwrite(zstd, pages[0], compression="zstd")

    def read(path):
        return subprocess.run([sys.executable, "-c", _WITHOUT_IMAGECODECS, str(path)], capture_output=True,
                              text=True).stdout.strip()

    assert read(lzw) == str(pages[0].sum(dtype=np.uint64))
    message = read(zstd)
    assert message.startswith("InputError") and "imagecodecs" in message and "corrupt" not in message


def test_pixel_sizes_from_imagej_and_ome_tiff(tmp_path, pages):
    imagej, ome = tmp_path / "ij.tif", tmp_path / "o.ome.tif"
    tifffile.imwrite(imagej, pages[0], imagej=True, resolution=(1 / 0.0046, 1 / 0.0046), metadata={"unit": "micron"})
    tifffile.imwrite(ome, pages[0], ome=True, metadata={"PhysicalSizeX": 4.6, "PhysicalSizeXUnit": "nm",
                                                         "PhysicalSizeY": 4.6, "PhysicalSizeYUnit": "nm"})
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, pages[0], resolution=(72, 72))
    for path, size in ((imagej, 4.6), (ome, 4.6), (plain, None)):
        with reader.open_section(path) as section:
            assert section.pixel_size_nm == (pytest.approx(size) if size else None), path.name


def test_png_mask_of_a_sized_slice_carries_it(tmp_path, pages):
    source = tmp_path / "sized.tif"
    tifffile.imwrite(source, pages[0][:512, :512], imagej=True, resolution=(0.25, 0.25), metadata={"unit": "nm"})
    result = subprocess.run([CLI, "segment", str(source), "-q"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "sized_mask.png") as mask:
        assert mask.info["dpi"][0] == pytest.approx(2.54e7 / 4.0, rel=1e-3)


def test_a_file_changed_while_being_read_is_one_error(tmp_path, pages):
    path = tmp_path / "live.tif"
    tifffile.imwrite(path, pages, photometric="minisblack")
    with reader.open_section(path) as section:
        section.read(0, REGION)
        with open(path, "r+b") as fh:
            fh.truncate(4096)
        with pytest.raises(InputError, match=r"live.tif: cannot read section 2 .*changed or removed while being read"):
            section.read(2, REGION)


def test_an_input_at_another_scale_is_said_once(tmp_path, pages):
    import json
    import shutil

    from emseg_lite.runtime.engine import registry

    model = tmp_path / "m.tflite"
    shutil.copy(registry.embedded_models()["int8"], model)
    card = json.loads(registry.embedded_models()["int8"].with_suffix(".json").read_text())
    card["training"]["pixel_size_nm"] = 4.0
    model.with_suffix(".json").write_text(json.dumps(card))
    for name, nm in (("a.tif", 8.0), ("b.tif", 8.0), ("c.tif", 4.6)):
        tifffile.imwrite(tmp_path / name, pages[0][:512, :512], imagej=True, resolution=(1 / nm, 1 / nm),
                         metadata={"unit": "nm"})
    result = subprocess.run([CLI, "segment", *(str(tmp_path / n) for n in ("a.tif", "b.tif", "c.tif")), "-o",
                             str(tmp_path / "out"), "--model", str(model), "-q"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and "a.tif: pixels of 8 nm, but the model learnt sections of 4 nm" in warnings[0]
    quiet = subprocess.run([CLI, "segment", str(tmp_path / "c.tif"), "-o", str(tmp_path / "out2"), "--model",
                            str(model), "-q"], capture_output=True, text=True)
    assert "WARNING" not in quiet.stderr  # 4.6 nm is within a quarter of 4
