"""Every hyper-parameter of a training run, in one object written as ``config.json``.

A run directory is self-describing (as in CSBDeep): ``config.json`` says how the
model was built and trained, ``card.json`` what it does and how well. Loading is
strict: unknown keys are an error, not silently ignored.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar


@dataclass
class ModelConfig:
    """U-Net shape. ``widths`` has one entry per level plus the bottleneck (depth + 1).

    ``block``: ``conv`` (3x3 convolutions) or ``separable`` (3x3 depthwise + 1x1);
    ``upsampling``: ``transpose`` (2x2 stride-2 transposed conv) or ``nearest``
    (nearest-neighbour x2 then 1x1 conv). ``first_convs``/``convs`` are 3x3
    convolutions per encoder/decoder level at full resolution / elsewhere.
    """

    name: str = "edge"
    widths: list[int] = field(default_factory=lambda: [8, 16, 24, 32, 48])
    block: str = "conv"
    upsampling: str = "transpose"
    convs: int = 1
    full_res_convs: int = 1
    batch_norm: bool = True

    @property
    def depth(self) -> int:
        return len(self.widths) - 1


PRESETS: dict[str, ModelConfig] = {
    # The U-Net paper's widths; a reference point, far too slow for the edge.
    "seed": ModelConfig(name="seed", widths=[64, 128, 256, 512, 1024], full_res_convs=2, batch_norm=False),
    # A base-16 U-Net, the usual small baseline.
    "base16": ModelConfig(name="base16", widths=[16, 32, 64, 128, 256], full_res_convs=2),
    # The shipped default: lean full-resolution levels, context from depth.
    "edge": ModelConfig(),
}


@dataclass
class AugmentConfig:
    """Random training-sample transforms (U-Net paper style), seeded per run."""

    elastic_grid: int = 3
    elastic_sigma: float = 10.0
    brightness: float = 0.1
    contrast: float = 0.2
    gamma: float = 0.3
    noise_sigma: float = 0.03


class _JsonConfig:
    """``config.json`` in and out, strictly: unknown keys are an error (``_nested``: sub-configs)."""

    _nested: ClassVar[dict[str, type]] = {}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        data = dict(data)
        for key, sub in cls._nested.items():
            if key in data:
                data[key] = _strict(sub, data[key])
        return _strict(cls, data)

    @classmethod
    def load(cls, path: Path):
        return cls.from_dict(json.loads(Path(path).read_text()))


@dataclass
class TrainConfig(_JsonConfig):
    data: str = "../shared/data/isbi2012"
    val_sections: int = 5
    membrane_value: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: str = "bce"
    crop: int = 256
    batch_size: int = 8
    steps_per_epoch: int = 100
    epochs: int = 25
    learning_rate: float = 2e-3
    patience: int = 15
    max_minutes: float = 33.0
    qat_epochs: int = 3
    qat_learning_rate: float = 5e-5
    tile: int | None = None
    seed: int = 0
    pixel_size_nm: float | None = None
    """Pixel size of the training data (ISBI 2012: 4 nm), recorded in the card for the runtime's
    scale check and the bioimage.io package; None when unknown."""

    _nested: ClassVar[dict[str, type]] = {"model": ModelConfig, "augment": AugmentConfig}


@dataclass
class FineTuneConfig(_JsonConfig):
    """The fine-tuning recipe (``make finetune``): every number of it, written as ``config.json``.

    Starts from a trained float model (by default the shipped one) and keeps its
    architecture, normalisation and tile. A fixed schedule -- linear warm-up,
    then cosine decay to zero -- rather than early stopping: a held-out section
    or two is too small to pick a checkpoint on, and with too few sections for
    any hold-out the same schedule still applies. See ``train/adapt.py``.
    """

    images: str = ""
    labels: str = ""
    label_kind: str = "auto"
    membrane_value: int = 0
    boundary_width: int = 3
    sections: list[int] | None = None
    base: str | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: str = "bce"
    crop: int = 96
    batch_size: int = 8
    steps: int = 1500
    warmup_steps: int = 100
    learning_rate: float = 1e-3
    freeze_batch_norm: bool = True
    steps_per_epoch: int = 100
    qat_epochs: int = 3
    qat_learning_rate: float = 5e-5
    seed: int = 0
    pixel_size_nm: float | None = None
    """Pixel size of the user's sections, from their file's metadata or --pixel-size-nm (None: unknown)."""

    _nested: ClassVar[dict[str, type]] = {"augment": AugmentConfig}


def _strict(cls, data: dict[str, Any]):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {', '.join(unknown)}")
    return cls(**data)


def quick(config: TrainConfig) -> TrainConfig:
    """A few tiny steps, for tests and smoke runs: proves the pipeline, not the model."""
    return dataclasses.replace(
        config, crop=128, batch_size=2, steps_per_epoch=3, epochs=2, patience=2, qat_epochs=1, max_minutes=5.0
    )


def quick_finetune(config: FineTuneConfig) -> FineTuneConfig:
    """A few tiny fine-tuning steps: proves the pipeline (CI), not the model."""
    return dataclasses.replace(config, steps=6, warmup_steps=2, batch_size=2, steps_per_epoch=3, qat_epochs=1)
