"""The package's two weight formats, written from the full Keras model.

Both take any batch and any spatial size (the network is fully convolutional;
the rdf states the multiples it needs) and keep the network's own NHWC layout,
which the rdf describes as axes (batch, y, x, channel).

- **ONNX**, converted by tf2onnx at ``OPSET``: deepImageJ's ONNX engine reads
  opsets up to 18, and every operator this network uses (Conv, ConvTranspose,
  MaxPool, Concat, Relu, Sigmoid and the shape arithmetic of a dynamic
  ConvTranspose) exists in 17.
- **TensorFlow SavedModel**, written the way Keras 3's ``model.export`` writes
  one: a ``serve`` function returning a dict, also the ``serving_default``
  signature. bioimageio.core (with TensorFlow 2) loads SavedModels through
  ``keras.layers.TFSMLayer``, which calls ``serve`` positionally and expects a
  dict; tf-keras has no TFSMLayer, so the package is tested without
  ``TF_USE_LEGACY_KERAS``.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from emseg_lite.train.keras2 import keras, tf

OPSET = 17
INPUT = "raw"
OUTPUT = "membrane"
"""Tensor names in both formats, and the tensor ids of the rdf."""


def _signature() -> tf.TensorSpec:
    return tf.TensorSpec([None, None, None, 1], tf.float32, name=INPUT)


def to_onnx(model: keras.Model, opset: int = OPSET) -> bytes:
    """ONNX bytes of ``model``: input ``raw`` (N, H, W, 1) float32 in [0, 1], output
    ``membrane`` (N, H, W, 1) membrane probability."""
    import tf2onnx

    @tf.function(input_signature=[_signature()])
    def serve(raw):
        return {OUTPUT: model(raw, training=False)}

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=[_signature()], opset=opset)
    return proto.SerializeToString()


def saved_model_zip(model: keras.Model, workdir: Path) -> bytes:
    """A zipped TensorFlow SavedModel of ``model`` (the zoo's ``tensorflow_saved_model_bundle``)."""
    module = tf.Module()
    module.model = model

    @tf.function(input_signature=[_signature()])
    def serve(raw):
        return {OUTPUT: model(raw, training=False)}

    module.serve = serve
    folder = workdir / "saved_model"
    tf.saved_model.save(module, str(folder), signatures={"serving_default": serve})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


class OnnxAsKeras:
    """An ONNX Runtime session called as the Keras model is (``model(batch, training=False)``),
    so that ``train.predict.predict_slice`` runs it over exactly the window it gives the full model."""

    def __init__(self, onnx_bytes: bytes, threads: int = 2):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])

    def __call__(self, batch, training: bool = False) -> tf.Tensor:
        batch = np.asarray(batch, np.float32)
        (output,) = self.session.run(None, {INPUT: batch})
        if output.shape != batch.shape:
            # Seen once in CI (not reproduced): an output with an extra axis. Its values in
            # input order are still a map to compare; a wrong layout fails the agreement gate.
            if output.size != batch.size:
                raise ValueError(f"the ONNX model maps an input of {batch.shape} to {output.shape}")
            output = output.reshape(batch.shape)
        return tf.constant(output)
