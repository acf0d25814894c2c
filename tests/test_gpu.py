"""`--accelerator gpu|auto|cpu` end to end: the GPU route on a software Vulkan driver, its
agreement with the CPU path on real ISBI sections, and the clean refusals and fall-backs.

CI has no GPU, so the GPU route runs on lavapipe (Mesa's software Vulkan) from
``make software-vulkan`` (tests/software_vulkan.sh), which ``EMSEG_VULKAN`` names: Dawn
takes it for an adapter like any other, so ``--accelerator gpu`` compiles and runs the
model exactly as on a real GPU, about 1 s per 608-px tile on 2 cores. The Vulkan loader
is found at process start (LD_LIBRARY_PATH), so every check runs the CLI in a process
of its own with that folder's env.sh.
"""
import ctypes.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from conftest import missing
from PIL import Image

from emseg_lite.runtime.core.card import ModelCard, card_path_for
from emseg_lite.runtime.engine import registry

CLI = str(Path(sys.executable).parent / "emseg-lite")
SECTIONS = ("0.png", "1.png")


@pytest.fixture(scope="module")
def vulkan() -> Path:
    value = os.environ.get("EMSEG_VULKAN")
    if not value or not (Path(value) / "env.sh").is_file():
        missing(f"no software Vulkan driver (EMSEG_VULKAN={value!r}): make software-vulkan")
    return Path(value)


def run(*args, vulkan: Path | None = None, **env: str):
    """The CLI in a new process, with the software Vulkan driver's environment when given,
    then ``env``'s variables over it."""
    command = ["env", *(f"{key}={value}" for key, value in env.items()), CLI, *map(str, args)]
    if vulkan is not None:
        command = ["bash", "-c", f'. "{vulkan}/env.sh" && exec "$@"', "_", *command]
    return subprocess.run(command, capture_output=True, text=True)


def accelerator_line(result) -> str:
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("accelerator: ")]
    return line


@pytest.fixture(scope="module")
def sections(isbi, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sections")
    for name in SECTIONS:
        (folder / name).write_bytes((isbi / "train" / "images" / name).read_bytes())
    return folder


def outputs(folder: Path, suffix: str) -> list[np.ndarray]:
    return [np.asarray(Image.open(folder / f"{Path(n).stem}{suffix}")) if suffix.endswith(".png")
            else tifffile.imread(folder / f"{Path(n).stem}{suffix}") for n in SECTIONS]


def test_gpu_masks_agree_with_the_cpu_path_within_the_cards_floor(vulkan, sections, tmp_path):
    """No --model on the GPU: the float16 model, whose card's agreement floor the GPU's masks
    must meet against the same model on the CPU (measured: 99.96-99.98 % of pixels)."""
    gpu = run("segment", sections, "-o", tmp_path / "gpu", "--accelerator", "gpu", "--probabilities", vulkan=vulkan)
    cpu = run("segment", sections, "-o", tmp_path / "cpu", "--accelerator", "cpu", "--model", "float16",
              "--probabilities")
    assert gpu.returncode == 0 and cpu.returncode == 0, gpu.stderr + cpu.stderr
    assert accelerator_line(gpu).startswith("accelerator: gpu (llvmpipe"), gpu.stderr
    assert "INFO" not in gpu.stderr + gpu.stdout, "LiteRT's own log reached the user"
    card = ModelCard.load(card_path_for(registry.resolve("float16")))
    for gpu_mask, cpu_mask in zip(outputs(tmp_path / "gpu", "_mask.png"), outputs(tmp_path / "cpu", "_mask.png")):
        agreement = float(np.mean(gpu_mask == cpu_mask))
        assert card.agreement.floor <= agreement < 1.0, agreement  # < 1: it really ran elsewhere
    for gpu_p, cpu_p in zip(outputs(tmp_path / "gpu", "_prob.tif"), outputs(tmp_path / "cpu", "_prob.tif")):
        assert np.quantile(np.abs(gpu_p - cpu_p), 0.99) < 2 ** -8


def test_the_gpu_tile_model_keeps_its_tile_and_agrees(vulkan, sections, tmp_path):
    """float16-2048 is float16 on the GPU's 2048-px tiles: the tiler takes the card's tile on the
    GPU (which cannot resize a compiled model) and the masks stay within the card's floor."""
    one = sections / SECTIONS[0]
    gpu = run("segment", one, "-o", tmp_path / "gpu", "--accelerator", "gpu", "--model", "float16-2048", vulkan=vulkan)
    cpu = run("segment", one, "-o", tmp_path / "cpu", "--accelerator", "cpu", "--model", "float16")
    assert gpu.returncode == 0 and cpu.returncode == 0, gpu.stderr + cpu.stderr
    card = ModelCard.load(card_path_for(registry.resolve("float16-2048")))
    assert card.tiling.tile == 2048 and card.agreement.passed
    name = f"{Path(SECTIONS[0]).stem}_mask.png"
    agreement = np.mean(np.asarray(Image.open(tmp_path / "gpu" / name)) == np.asarray(Image.open(tmp_path / "cpu" / name)))
    assert agreement >= card.agreement.floor
    refused = run("segment", one, "-o", tmp_path / "tiled", "--accelerator", "gpu", "--tile", "1024", vulkan=vulkan)
    assert refused.returncode == 2 and "608 x 608 tiles only, not 1024 x 1024" in refused.stderr, refused.stderr


def test_volume_and_watch_run_on_the_gpu(vulkan, isbi, tmp_path):
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, np.stack([np.asarray(Image.open(isbi / "train" / "images" / n)) for n in SECTIONS]))
    result = run("volume", stack, "-o", tmp_path / "seg.ome.zarr", "--workers", "1", "--accelerator", "gpu",
                 vulkan=vulkan)
    assert result.returncode == 0, result.stderr
    assert accelerator_line(result).startswith("accelerator: gpu ("), result.stderr
    cpu = run("segment", stack, "-o", tmp_path / "cpu", "--accelerator", "cpu", "--model", "float16")
    assert cpu.returncode == 0, cpu.stderr
    membrane = zarr.open_group(tmp_path / "seg.ome.zarr", mode="r")["labels/membrane/0"][:]
    cpu_membrane = tifffile.imread(tmp_path / "cpu" / "stack_mask.tif") == 0
    assert np.mean((membrane.reshape(cpu_membrane.shape) != 0) == cpu_membrane) > 0.99

    inbox, out = tmp_path / "inbox", tmp_path / "watched"
    inbox.mkdir()
    (inbox / "0.png").write_bytes((isbi / "train" / "images" / "0.png").read_bytes())
    watched = run("watch", inbox, "-o", out, "--once", "--settle", "0", "--accelerator", "gpu", vulkan=vulkan)
    assert watched.returncode == 0, watched.stderr
    assert accelerator_line(watched).startswith("accelerator: gpu ("), watched.stderr
    assert (out / "0_mask.png").is_file()


def test_auto_passes_over_a_software_adapter(vulkan, sections, tmp_path):
    """Software Vulkan is a Vulkan device but ~50x slower than XNNPACK: auto takes the CPU and says why."""
    auto = run("segment", sections, "-o", tmp_path / "auto", vulkan=vulkan)
    cpu = run("segment", sections, "-o", tmp_path / "cpu", "--accelerator", "cpu")
    assert auto.returncode == 0 and cpu.returncode == 0, auto.stderr + cpu.stderr
    assert "accelerator: cpu (" in accelerator_line(auto) and "software Vulkan adapter" in accelerator_line(auto)
    for a, c in zip(outputs(tmp_path / "auto", "_mask.png"), outputs(tmp_path / "cpu", "_mask.png")):
        assert np.array_equal(a, c)
    asked = run("info", "--accelerator", "gpu", vulkan=vulkan)
    assert asked.returncode == 0 and "accelerator    gpu (llvmpipe" in asked.stdout, asked.stdout + asked.stderr
    assert "emseg-float16.tflite" in asked.stdout  # the GPU's default model


def test_gpu_without_an_adapter_exits_2_and_writes_nothing(vulkan, sections, tmp_path):
    result = run("segment", sections / SECTIONS[0], "-o", tmp_path / "out", "--accelerator", "gpu", vulkan=vulkan,
                 VK_DRIVER_FILES=str(tmp_path / "no-driver.json"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "no GPU adapter" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


@pytest.mark.skipif(ctypes.util.find_library("vulkan") is not None, reason="this machine has a Vulkan loader")
def test_without_a_vulkan_loader_gpu_refuses_and_auto_falls_back(test_slice, tmp_path):
    refused = run("segment", test_slice, "-o", tmp_path / "gpu", "--accelerator", "gpu")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "no Vulkan loader (libvulkan.so.1" in refused.stderr and "libvulkan1" in refused.stderr
    assert not (tmp_path / "gpu").exists()
    auto = run("segment", test_slice, "-o", tmp_path / "auto")
    assert auto.returncode == 0, auto.stderr
    assert accelerator_line(auto).startswith("accelerator: cpu (") and "no Vulkan loader" in auto.stderr
    assert (tmp_path / "auto" / "0_mask.png").is_file()


def test_a_delegate_and_the_gpu_exclude_each_other(test_slice, tmp_path):
    result = run("segment", test_slice, "-o", tmp_path, "--accelerator", "gpu", "--delegate", "libnothing.so")
    assert result.returncode == 2 and "exclude each other" in result.stderr, result.stderr
