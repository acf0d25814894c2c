"""A complete, valid model card for tests that need one without training."""
from __future__ import annotations

from emseg_lite.runtime.core.card import (
    Architecture,
    Evaluation,
    MaskPolarity,
    ModelCard,
    ModelFile,
    Normalization,
    PostProcessing,
    Scores,
    TensorSpec,
    Tiling,
    Training,
)


def example_card(**changes) -> ModelCard:
    scores = Scores(pixel_error=0.1, membrane_dice=0.8, v_rand=0.9, v_info=0.95)
    fields = dict(
        variant="int8",
        model=ModelFile("emseg-int8.tflite", 1234, "0" * 64),
        input=TensorSpec([1, 64, 64, 1], "int8", 1 / 255, -128),
        output=TensorSpec([1, 64, 64, 1], "int8", 1 / 256, -128),
        output_meaning="membrane probability in [0, 1] (1 = membrane)",
        normalization=Normalization(),
        mask=MaskPolarity(),
        postprocessing=PostProcessing(),
        tiling=Tiling(64, 16, 16, 1 / 256, 0.001),
        architecture=Architecture("edge", 4, [8, 16, 24, 48, 64], "conv", "transpose", 1000, 10**9, 120),
        training=Training("../shared/data/isbi2012", list(range(25)), [25, 26, 27, 28, 29], "make train", "2026-11-24",
                          60.0, 3, 1, 0, "bce_dice", "x86_64"),
        validation={"full_model": Evaluation(scores, scores)},
    )
    fields.update(changes)
    return ModelCard(**fields)
