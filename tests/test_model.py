"""The U-Net: fully convolutional, receptive-field bound is real, MACs add up, QAT-able."""
import numpy as np
import pytest

from emseg_lite.train import qat
from emseg_lite.train.config import PRESETS, ModelConfig
from emseg_lite.train.model import build_unet, count_macs, receptive_field_radius

TINY = ModelConfig(name="tiny", widths=[4, 4, 8], batch_norm=False)


def _randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        layer.set_weights([rng.normal(0, 0.5, w.shape) for w in layer.get_weights()])


@pytest.mark.parametrize("block,upsampling", [("conv", "transpose"), ("separable", "nearest")])
def test_fully_convolutional_on_any_aligned_size(block, upsampling):
    model = build_unet(ModelConfig(widths=[4, 8, 8], block=block, upsampling=upsampling))
    for h, w in [(32, 32), (48, 80)]:
        assert model.predict(np.zeros((1, h, w, 1), np.float32), verbose=0).shape == (1, h, w, 1)


def test_nothing_beyond_the_receptive_field_changes_the_output():
    model = build_unet(TINY)
    _randomize(model)
    radius = receptive_field_radius(model)
    x = np.random.default_rng(1).random((1, 96, 96, 1)).astype(np.float32)
    centre = model.predict(x, verbose=0)[0, 48, 48, 0]
    for dy, dx in [(radius + 1, 0), (-radius - 1, 0), (0, radius + 1), (0, -radius - 1)]:
        poked = x.copy()
        poked[0, 48 + dy, 48 + dx, 0] += 10.0
        assert model.predict(poked, verbose=0)[0, 48, 48, 0] == centre
    near = x.copy()
    near[0, 48, 48 + 2, 0] += 10.0
    assert model.predict(near, verbose=0)[0, 48, 48, 0] != centre


def test_mac_count_by_hand():
    config = ModelConfig(name="hand", widths=[2, 4], full_res_convs=1, convs=1, batch_norm=False)
    # 8x8 input: enc0 3x3 1->2 at 8x8: 64*9*2 = 1152; bottleneck 3x3 2->4 at 4x4: 16*9*8 = 1152;
    # transpose 2x2 4->2 from 4x4: 16*4*8 = 512; dec0 3x3 (2+2)->2 at 8x8: 64*9*8 = 4608; head 1x1 2->1: 128.
    assert count_macs(config, 8) == 1152 + 1152 + 512 + 4608 + 128


def test_seed_preset_is_the_unet_paper_width():
    assert PRESETS["seed"].widths == [64, 128, 256, 512, 1024]
    assert PRESETS["seed"].depth == 4


def test_default_model_survives_quantization_aware_wrapping():
    model = build_unet(PRESETS["edge"])
    quantized = qat.quantize(model)
    x = np.random.default_rng(0).random((1, 64, 64, 1)).astype(np.float32)
    assert quantized.predict(x, verbose=0).shape == (1, 64, 64, 1)
