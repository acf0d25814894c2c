"""Keras model -> TFLite bytes, one function per variant.

Every variant has a static input of (1, tile, tile, 1): the runtime tiles larger
slices. ``int8`` variants are full-integer: int8 input and output tensors and
only int8 builtin ops, calibrated on real training tiles; the QAT model brings
its own learned ranges, the float model gets post-training quantisation (PTQ).
``float16`` stores weights as fp16 (what the TFLite GPU delegate wants) and keeps
float32 input/output; ``float32`` is the unquantised reference. ``float16-2048`` is
``float16`` on ``GPU_TILE``-px tiles: a GPU compiles a model for its one input size
(LiteRT will not resize it there), and at the card's 608 px it spends most of each
call on overhead and halo.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from emseg_lite.runtime.core.card import Normalization
from emseg_lite.runtime.engine.intensity import intensity_range, normalize
from emseg_lite.runtime.engine.tiling import Tile, gather, reflect_indices
from emseg_lite.runtime.pipelines.datasets import LabeledVolume
from emseg_lite.train.keras2 import keras, tf

VARIANTS = ("float32", "float16", "float16-2048", "int8", "int8-ptq")
GPU_TILE = 2048
"""The tile of ``float16-2048``: 4 MP a call, 91 % of it kept after the 48-px halo (608: 71 %)."""


def tile_of(variant: str, card_tile: int) -> int:
    return GPU_TILE if variant == "float16-2048" else card_tile


def _converter(model: keras.Model, tile: int) -> tf.lite.TFLiteConverter:
    @tf.function(input_signature=[tf.TensorSpec([1, tile, tile, 1], tf.float32, name="slice")])
    def serve(x):
        return model(x, training=False)

    return tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], model)


def to_float32(model: keras.Model, tile: int) -> bytes:
    return _converter(model, tile).convert()


def to_float16(model: keras.Model, tile: int) -> bytes:
    converter = _converter(model, tile)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def to_int8(model: keras.Model, tile: int, representative: list[np.ndarray]) -> bytes:
    """Full-integer model; ``representative`` holds (tile, tile) float32 [0, 1] inputs."""
    converter = _converter(model, tile)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[np.newaxis, :, :, np.newaxis]] for x in representative)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def representative_tiles(volume: LabeledVolume, spec: Normalization, tile: int, count: int,
                         seed: int = 0) -> list[np.ndarray]:
    """``count`` random (tile, tile) windows of normalised training sections."""
    rng = np.random.default_rng(seed)
    tiles = []
    for _ in range(count):
        image = volume.images[rng.integers(len(volume.images))]
        height, width = image.shape
        y, x = int(rng.integers(-tile // 4, height)), int(rng.integers(-tile // 4, width))
        window = Tile(reflect_indices(y, tile, height), reflect_indices(x, tile, width), 0, 0, tile, tile)
        tiles.append(gather(normalize(image, *intensity_range(image, spec)), window))
    return tiles


def float_tensors(tensor_details: Iterable[dict]) -> list[str]:
    """Names of float tensors in a model -- an int8 model must have none."""
    return [d["name"] for d in tensor_details if np.dtype(d["dtype"]).kind == "f"]
