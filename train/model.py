"""The membrane U-Net and the numbers the rest of the pipeline needs from it.

Encoder: per level 3x3 conv blocks then 2x2 max-pool; a bottleneck; decoder: per
level x2 up-sampling, concatenation of the skip, conv blocks; a 1x1 conv with
sigmoid gives membrane probability. Only layers that tfmot's default 8-bit QAT
and full-integer TFLite support are used (Conv2D, DepthwiseConv2D, BatchNorm
folded into convs, ReLU, MaxPooling2D, Conv2DTranspose or UpSampling2D,
Concatenate). The network is fully convolutional: any input whose sides are
multiples of ``2 ** depth``.

``receptive_field_radius`` and ``count_macs`` walk the built graph, so they stay
true whatever the config: the radius sets the runtime's halo (tiling is exact
only beyond it), the MACs go into the model card and the benchmarks.
"""
from __future__ import annotations

import math

from .config import ModelConfig
from .keras2 import keras

L = keras.layers


def build_unet(config: ModelConfig, input_size: int | None = None) -> keras.Model:
    inputs = keras.Input((input_size, input_size, 1), name="slice")
    x = inputs
    skips = []
    for level, width in enumerate(config.widths[:-1]):
        x = _block(x, width, _convs_at(config, level), config, f"enc{level}")
        skips.append(x)
        x = L.MaxPooling2D(2, name=f"pool{level}")(x)
    x = _block(x, config.widths[-1], config.convs, config, "bottleneck")
    for level in reversed(range(config.depth)):
        x = _upsample(x, config.widths[level], config, f"up{level}")
        x = L.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = _block(x, config.widths[level], _convs_at(config, level), config, f"dec{level}")
    outputs = L.Conv2D(1, 1, activation="sigmoid", name="membrane")(x)
    return keras.Model(inputs, outputs, name=f"emseg_{config.name}")


def _convs_at(config: ModelConfig, level: int) -> int:
    return config.full_res_convs if level == 0 else config.convs


def _block(x, width: int, n: int, config: ModelConfig, name: str):
    for i in range(n):
        separable = config.block == "separable" and x.shape[-1] > 1
        if separable:
            x = L.DepthwiseConv2D(3, padding="same", use_bias=not config.batch_norm, name=f"{name}_dw{i}")(x)
            if config.batch_norm:
                x = L.BatchNormalization(name=f"{name}_dwbn{i}")(x)
            x = L.ReLU(name=f"{name}_dwrelu{i}")(x)
        kernel = 1 if separable else 3
        x = L.Conv2D(width, kernel, padding="same", use_bias=not config.batch_norm, name=f"{name}_conv{i}")(x)
        if config.batch_norm:
            x = L.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = L.ReLU(name=f"{name}_relu{i}")(x)
    return x


def _upsample(x, width: int, config: ModelConfig, name: str):
    if config.upsampling == "transpose":
        return L.Conv2DTranspose(width, 2, strides=2, padding="same", name=name)(x)
    if config.upsampling == "nearest":
        x = L.UpSampling2D(2, interpolation="nearest", name=f"{name}_nearest")(x)
        return L.Conv2D(width, 1, activation="relu", name=name)(x)
    raise ValueError(f"unknown upsampling {config.upsampling!r}")


def receptive_field_radius(model: keras.Model) -> int:
    """Pixels from an output pixel to the farthest input pixel that can affect it.

    An upper bound, walked through the graph: a k x k conv adds (k-1)/2 steps of
    the current pixel spacing, a 2x2 pool one step (then doubles the spacing), a
    x2 up-sampling one step of the new spacing; concatenation takes the maximum.
    """
    field: dict[int, tuple[float, float]] = {}
    for layer in model.layers:
        inputs = layer.input if isinstance(layer.input, list) else [layer.input]
        if isinstance(layer, L.InputLayer):
            radius, jump = 0.0, 1.0
        else:
            radius = max(field[id(t)][0] for t in inputs)
            jump = field[id(inputs[0])][1]
            if isinstance(layer, (L.Conv2D, L.DepthwiseConv2D)) and not isinstance(layer, L.Conv2DTranspose):
                radius += (layer.kernel_size[0] - 1) // 2 * layer.dilation_rate[0] * jump
            elif isinstance(layer, L.MaxPooling2D):
                radius += (layer.pool_size[0] - 1) * jump
                jump *= layer.strides[0]
            elif isinstance(layer, (L.Conv2DTranspose, L.UpSampling2D)):
                stride = layer.strides[0] if isinstance(layer, L.Conv2DTranspose) else layer.size[0]
                jump /= stride
                radius += (stride - 1) * jump
                if isinstance(layer, L.Conv2DTranspose):
                    radius += (layer.kernel_size[0] - stride) * jump
        outputs = layer.output if isinstance(layer.output, list) else [layer.output]
        for t in outputs:
            field[id(t)] = (radius, jump)
    return math.ceil(field[id(model.output)][0])


def count_macs(config: ModelConfig, input_size: int) -> int:
    """Multiply-accumulates of one forward pass on an ``input_size`` square tile."""
    model = build_unet(config, input_size)
    total = 0
    for layer in model.layers:
        if isinstance(layer, L.Conv2DTranspose):
            _, h, w, c_in = layer.input_shape
            total += h * w * math.prod(layer.kernel_size) * c_in * layer.filters
        elif isinstance(layer, L.DepthwiseConv2D):
            _, h, w, c = layer.output_shape
            total += h * w * math.prod(layer.kernel_size) * c
        elif isinstance(layer, L.Conv2D):
            _, h, w, c_out = layer.output_shape
            total += h * w * math.prod(layer.kernel_size) * layer.input_shape[-1] * c_out
    return int(total)


def alignment(config: ModelConfig) -> int:
    """Total down-sampling: input sides and tile origins must be multiples of it."""
    return 2**config.depth


def halo_and_tile(model: keras.Model, config: ModelConfig, tile: int | None, slice_size: int = 512):
    """Halo (receptive field rounded up to the alignment) and the export tile size.

    By default the tile fits a ``slice_size`` slice plus its halo in one pass, so a
    standard 512 x 512 section costs one network call.
    """
    align = alignment(config)
    halo = math.ceil(receptive_field_radius(model) / align) * align
    if tile is None:
        tile = math.ceil((slice_size + 2 * halo) / align) * align
    return halo, tile, align
