"""The model card: the one contract between train, export and runtime.

A card is a JSON file beside a model (``model.keras`` in a run directory,
``emseg-int8.tflite`` in an export). It holds every number that more than one
layer needs -- tile size and halo, intensity normalisation, threshold and
post-processing, mask polarity, tensor quantisation -- so none of them is
repeated as a literal anywhere else. Train writes the first card; export copies
it per variant and fills in the variant's file, tensors and measured figures; the runtime reads
it and trusts nothing else.

Loading is strict in the CSBDeep manner: unknown keys, missing keys and wrong
types are all reported at once, in one line naming the file.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .errors import ModelError
from .files import atomic_write_text, file_sha256
from .strict_json import build

SCHEMA = "emseg-lite/model-card"
SCHEMA_VERSION = 1
VARIANTS = ("keras", "float32", "float16", "float16-2048", "int8", "int8-ptq", "onnx")


@dataclass(frozen=True)
class TensorSpec:
    """Shape, dtype and affine quantisation (real = (q - zero_point) * scale)."""

    shape: list[int]
    dtype: str
    scale: Optional[float] = None
    zero_point: Optional[int] = None


@dataclass(frozen=True)
class Normalization:
    """Per-slice intensity mapping: the given percentiles go to 0 and 1, then clip.

    Percentiles of the whole slice (not of a tile) make 8-bit, 16-bit and float
    inputs from different microscopes comparable and keep tiling exact.
    """

    method: str = "percentile"
    low_percentile: float = 0.5
    high_percentile: float = 99.5


@dataclass(frozen=True)
class MaskPolarity:
    """Pixel values of the written mask. ISBI convention: 0 = membrane, 255 = cell."""

    membrane_value: int = 0
    cell_value: int = 255


@dataclass(frozen=True)
class PostProcessing:
    """How a membrane probability map becomes a mask (chosen on validation).

    ``threshold``: membrane where probability > threshold (method ``none``).
    ``watershed``: the map is smoothed with a Gaussian of ``smoothing_sigma``
    pixels; seeds are connected regions below ``seed_threshold`` with at least
    ``min_seed_area`` pixels; they are flooded outwards in ``levels`` steps of
    probability and the region borders become closed 1-pixel membranes.
    """

    method: str = "watershed"
    threshold: float = 0.5
    seed_threshold: float = 0.1
    min_seed_area: int = 1
    smoothing_sigma: float = 2.0
    levels: int = 4


@dataclass(frozen=True)
class Objects:
    """How a volume's membranes become 3-D objects (``post.objects``, ``emseg-lite neurons``):
    fragments merge while the ``scoring`` of their shared face (``objects.SCORINGS``) stays
    below ``threshold``, chosen on fib-gala's train volume (``make objects-study``). Voxels
    whose section spacing is at most ``isotropic_ratio`` pixels count as isotropic: the
    network then also looks at xz and yz planes; ``serial_pool``: ``objects.xy_pool``'s default."""

    threshold: float = 0.5
    scoring: str = "quantile-75"
    isotropic_ratio: float = 2.0
    serial_pool: int = 8


@dataclass(frozen=True)
class Tiling:
    """Static model input ``tile`` (pixels, square) and the ``halo`` cropped from
    each side of a tile's output. ``align`` is the network's total down-sampling:
    tile origins are multiples of it so that pooling grids line up and the stitched
    result equals one pass over the whole (reflect-padded) slice. The halo is the
    smallest for which that holds within ``halo_tolerance`` of membrane
    probability; ``halo_max_error`` is what was measured on validation."""

    tile: int
    halo: int
    align: int
    halo_tolerance: float
    halo_max_error: float


@dataclass(frozen=True)
class Architecture:
    name: str
    depth: int
    widths: list[int]
    block: str
    upsampling: str
    params: int
    macs_per_tile: int
    receptive_field_radius: int


@dataclass(frozen=True)
class LabelSource:
    """The image/label pair a run learnt from and how its labels were read (``runtime.labels``)."""

    images: str
    labels: str
    kind: str
    membrane_value: int
    boundary_width: int


@dataclass(frozen=True)
class ModelFile:
    file: str
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class Training:
    """How the model was made. ``labels`` is set when the data is an explicit image/label pair
    (otherwise ``data`` is a folder that ``datasets.locate`` understands); ``base_model`` when
    training started from another model's weights (fine-tuning)."""

    data: str
    train_sections: list[int]
    val_sections: list[int]
    command: str
    date: str
    duration_s: float
    epochs: int
    qat_epochs: int
    seed: int
    loss: str
    machine: str
    pixel_size_nm: Optional[float] = None
    """Pixel size of the training sections in nm (ISBI 2012: 4.0), where known: the
    scale the model expects. Published with the bioimage.io package's axes."""
    labels: Optional[LabelSource] = None
    base_model: Optional[ModelFile] = None


@dataclass(frozen=True)
class Scores:
    """ISBI figures, mean over slices. Pixel error and Dice on membrane pixels."""

    pixel_error: float
    membrane_dice: float
    v_rand: float
    v_info: float


@dataclass(frozen=True)
class Evaluation:
    """Scores of one model with plain thresholding and with watershed; ``metric`` is the
    V_rand / V_info definition (``metrics.METRICS``)."""

    threshold: Scores
    watershed: Scores
    metric: str = "isbi"


@dataclass(frozen=True)
class Comparison:
    """A fine-tuned model against the model it started from, on the same held-out sections.

    ``zero_shot``: the base int8 model with its own card's post-processing (what the user
    had before); ``fine_tuned``: this model with this card's post-processing. ``use`` is
    ``fine-tuned``, ``zero-shot`` or ``unmeasured`` (no held-out sections), ``reason`` says why.
    """

    sections: list[int]
    metric: str
    use: str
    reason: str
    zero_shot: Optional[Scores] = None
    fine_tuned: Optional[Scores] = None


@dataclass(frozen=True)
class Agreement:
    """A variant's masks compared with the full Keras model's on validation.

    ``max_abs_diff`` is the largest difference in membrane probability over all
    validation pixels; ``max_abs_diff_limit``, where set, gates it too (float
    formats such as ONNX must reproduce the full model, not just its masks).
    """

    pixel_agreement: float
    membrane_dice: float
    v_rand_diff: float
    floor: float
    passed: bool
    max_abs_diff: Optional[float] = None
    max_abs_diff_limit: Optional[float] = None


@dataclass(frozen=True)
class ModelCard:
    """``full_model``: the float Keras model of the same run (file, size, sha256), which
    every TFLite variant was converted or distilled from and fine-tuning starts from;
    ``comparison``: set on fine-tuned models (see ``Comparison``)."""

    variant: str
    model: ModelFile
    input: TensorSpec
    output: TensorSpec
    output_meaning: str
    normalization: Normalization
    mask: MaskPolarity
    postprocessing: PostProcessing
    tiling: Tiling
    architecture: Architecture
    training: Training
    validation: dict[str, Evaluation]
    agreement: Optional[Agreement] = None
    versions: dict[str, str] = field(default_factory=dict)
    full_model: Optional[ModelFile] = None
    comparison: Optional[Comparison] = None
    objects: Objects = field(default_factory=Objects)
    schema: str = SCHEMA
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        """Write the card atomically (temp file in the same folder, then rename)."""
        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, data: Any, source: str | Path = "<card>") -> "ModelCard":
        problems: list[str] = []
        card = build(cls, data, problems)
        if not problems:
            if card.schema != SCHEMA:
                problems.append(f"schema is {card.schema!r}, expected {SCHEMA!r}")
            if card.schema_version != SCHEMA_VERSION:
                problems.append(
                    f"schema_version {card.schema_version} is not supported "
                    f"(this emseg-lite reads version {SCHEMA_VERSION})"
                )
            if card.variant not in VARIANTS:
                problems.append(f"variant {card.variant!r} is not one of {', '.join(VARIANTS)}")
        if problems:
            raise ModelError(source, "invalid model card: " + "; ".join(problems))
        return card

    @classmethod
    def load(cls, path: str | Path) -> "ModelCard":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ModelError(path, "model card not found (expected a .json beside the model)") from None
        except OSError as exc:
            raise ModelError(path, f"cannot read model card ({exc.strerror})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(path, f"model card is not valid JSON (line {exc.lineno}: {exc.msg})") from None
        return cls.from_dict(data, path)

    def check_model_file(self, model_path: str | Path) -> None:
        """Refuse a model whose bytes are not the ones this card describes."""
        model_path = Path(model_path)
        size = model_path.stat().st_size
        if size != self.model.size_bytes or file_sha256(model_path) != self.model.sha256:
            raise ModelError(
                model_path,
                f"model file does not match its card (card: {self.model.size_bytes} bytes, "
                f"sha256 {self.model.sha256[:12]}...; file: {size} bytes)",
            )


def card_path_for(model_path: str | Path) -> Path:
    """The card of ``x.tflite`` (or ``x.keras``) is ``x.json`` in the same folder."""
    return Path(model_path).with_suffix(".json")
