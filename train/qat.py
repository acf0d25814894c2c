"""Quantization-aware fine-tuning with tensorflow-model-optimization (default 8-bit scheme).

QAT inserts fake-quantisation into the trained float model (folding batch norm
into the convolutions) and fine-tunes briefly, so the weights settle where int8
rounding costs least. The fine-tuning target is the float model's own output
(self-distillation), not the labels: fine-tuning on labels moved the QAT model
away from the float model it is meant to reproduce (97 % mask agreement in our
first runs, below the 99 % export gate), while the int8 file must above all
agree with the full model. Batch normalisation is frozen (inference statistics)
during fine-tuning: updating it on augmented crops was the other source of
drift (99.4 % -> 99.7 % agreement of the QAT model with the float model when
frozen, measured on the validation sections).
"""
from __future__ import annotations

import math
from pathlib import Path

from . import losses
from .keras2 import keras, tf


def _tfmot():
    import tensorflow_model_optimization as tfmot

    return tfmot


def quantize(model: keras.Model) -> keras.Model:
    return _tfmot().quantization.keras.quantize_model(model)


def load(path: str | Path) -> keras.Model:
    """Load a saved QAT model (its layers are tfmot wrappers, so they need tfmot's scope)."""
    with _tfmot().quantization.keras.quantize_scope():
        return keras.models.load_model(path, compile=False)


def version() -> str:
    return _tfmot().__version__


def fine_tune(model: keras.Model, dataset: tf.data.Dataset, config, validation, out: Path,
              verbose: int = 1) -> keras.Model:
    """QAT-fine-tune a copy of ``model`` to reproduce ``model``; keep the best epoch by V_rand
    (the last epoch when ``validation`` is None)."""
    from .validation import callbacks

    teacher_targets = dataset.map(lambda x, _: (x, model(x, training=False)))
    base = keras.models.clone_model(model)
    base.set_weights(model.get_weights())
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    student = quantize(base)
    student.compile(keras.optimizers.Adam(config.qat_learning_rate), loss=losses.bce, jit_compile=True)
    weights = out / "qat.weights.h5"
    student.fit(teacher_targets, steps_per_epoch=config.steps_per_epoch, epochs=config.qat_epochs, verbose=verbose,
                callbacks=callbacks(validation, math.inf, config.qat_epochs, str(weights),
                                    str(out / "qat_history.csv"), weights_only=True))
    if validation is not None:
        student.load_weights(weights)
        weights.unlink()
    student.save(out / "qat.h5")
    return student
