"""The one place TensorFlow is imported for training and export.

tensorflow-model-optimization's quantization-aware training needs Keras 2
(``tf-keras``), while TensorFlow >= 2.16 defaults to Keras 3. The switch is the
``TF_USE_LEGACY_KERAS`` environment variable, which only works if it is set
before TensorFlow is first imported -- so every train/export module imports
``tf`` and ``keras`` from here, never directly.
"""
from __future__ import annotations

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

if not keras.__version__.startswith("2."):
    raise ImportError(f"emseg-lite training needs Keras 2 (tf-keras), found Keras {keras.__version__}")

__all__ = ["tf", "keras"]
