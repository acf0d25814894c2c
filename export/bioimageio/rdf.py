"""The bioimage.io model description (``rdf.yaml``, spec 0.5), generated from a model card.

Nothing here is typed in by hand per model: the tensors' axes and sizes, the
halo, the normalisation, the post-processing and every figure come from the
card, so the package cannot drift from the model it wraps. What is fixed here
is what is true of the project, not of one model: citations, tags, and the
spec version the description is written for.

Axes follow the network's own layout, (batch, y, x, channel). The spatial size
is flexible: ``min`` is the smallest multiple of the network's down-sampling
(the card's ``align``) that still leaves pixels after cropping the card's halo
from both sides, ``step`` is ``align``. The preprocessing is the card's
normalisation in the zoo's vocabulary -- ``scale_range`` between the same
percentiles of each slice (axes y and x), then ``clip`` to [0, 1] -- so that
bioimageio.core, deepImageJ and emseg-lite all feed the network alike.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from emseg_lite.runtime.core.card import ModelCard

from .weights import INPUT, OPSET, OUTPUT

FORMAT_VERSION = "0.5.4"
"""Written for spec 0.5.4, which the zoo's consumers of 2025-2026 read; bioimageio.spec
0.5.12 (pinned for the tests) reads it and updates it in memory."""

CITATIONS = (
    {"text": "Cardona A, Saalfeld S, Preibisch S, et al. (2010) An integrated micro- and macroarchitectural "
             "analysis of the Drosophila brain by computer-assisted serial section electron microscopy. "
             "PLoS Biol 8(10): e1000502 (the ISBI 2012 sections)",
     "doi": "10.1371/journal.pbio.1000502"},
    {"text": "Arganda-Carreras I, Turaga SC, Berger DR, et al. (2015) Crowdsourcing the creation of image "
             "segmentation algorithms for connectomics. Front. Neuroanat. 9:142 (the ISBI 2012 challenge "
             "and its metrics)",
     "doi": "10.3389/fnana.2015.00142"},
    {"text": "Ronneberger O, Fischer P, Brox T (2015) U-Net: Convolutional networks for biomedical image "
             "segmentation. MICCAI 2015, LNCS 9351: 234-241",
     "doi": "10.1007/978-3-319-24574-4_28"},
)
TAGS = ("electron-microscopy", "2d", "cell-membrane", "tissue", "unet", "semantic-segmentation", "tensorflow",
        "onnx", "fiji", "deepimagej", "isbi2012", "drosophila", "connectomics", "membrane", "emseg-lite")


@dataclass(frozen=True)
class PackageFile:
    """A file inside the package: its name there and its sha256."""

    name: str
    sha256: str

    def source(self) -> dict:
        return {"source": self.name, "sha256": self.sha256}


@dataclass(frozen=True)
class PackageFiles:
    onnx: PackageFile
    saved_model: PackageFile
    test_input: PackageFile
    test_output: PackageFile
    sample_input: PackageFile
    sample_output: PackageFile
    card: PackageFile
    readme: str
    cover: str


@dataclass(frozen=True)
class Project:
    """What the installed distribution says about itself (pyproject.toml is its one source)."""

    version: str
    license: str
    authors: tuple[str, ...]
    tensorflow: str
    tf2onnx: str


def min_size(card: ModelCard) -> int:
    """Smallest input side the network takes that leaves pixels once the halo is cropped."""
    align = card.tiling.align
    return (2 * card.tiling.halo // align + 1) * align


def describe(card: ModelCard, files: PackageFiles, project: Project) -> dict:
    """The rdf of the package whose ONNX model's card is ``card``."""
    data_name = Path(card.training.data).name or card.training.data
    post = card.postprocessing
    return {
        "format_version": FORMAT_VERSION,
        "type": "model",
        "name": f"emseg-lite membrane U-Net ({data_name})",
        "description": (
            f"Membrane probability (1 = membrane between neurites) of serial-section TEM slices of neural "
            f"tissue, from a {card.architecture.params:,}-parameter 2-D U-Net trained on {data_name}. "
            f"Threshold at {post.threshold:g}, or run emseg-lite's watershed for closed 1-pixel membranes "
            f"(see README)."
        ),
        "version": project.version,
        "authors": [{"name": name} for name in project.authors],
        "cite": [dict(entry) for entry in CITATIONS],
        "license": project.license,
        "documentation": files.readme,
        "covers": [files.cover],
        "tags": list(TAGS),
        "attachments": [files.card.source()],
        "inputs": [_input(card, files)],
        "outputs": [_output(card, files)],
        "weights": _weights(card, files, project),
        "config": _config(card, files),
    }


def _space_axes(card: ModelCard, size_of) -> list[dict]:
    scale = {}
    if card.training.pixel_size_nm is not None:
        scale = {"scale": card.training.pixel_size_nm, "unit": "nanometer"}
    return [{"type": "space", "id": axis, "size": size_of(axis), **scale} for axis in ("y", "x")]


def _input(card: ModelCard, files: PackageFiles) -> dict:
    norm = card.normalization
    return {
        "id": INPUT,
        "description": (  # the spec allows 128 characters
            f"EM slice, any grey values; scaled per slice so that its {norm.low_percentile:g}th and "
            f"{norm.high_percentile:g}th percentiles become 0 and 1, then clipped"
        ),
        "axes": [{"type": "batch"},
                 *_space_axes(card, lambda axis: {"min": min_size(card), "step": card.tiling.align}),
                 {"type": "channel", "channel_names": ["em"]}],
        "test_tensor": files.test_input.source(),
        "sample_tensor": files.sample_input.source(),
        "data": {"type": "float32"},
        "preprocessing": [
            {"id": "scale_range", "kwargs": {"axes": ["y", "x"], "min_percentile": norm.low_percentile,
                                             "max_percentile": norm.high_percentile}},
            {"id": "clip", "kwargs": {"min": 0.0, "max": 1.0}},
            {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}},
        ],
    }


def _output(card: ModelCard, files: PackageFiles) -> dict:
    halo = card.tiling.halo
    axes = [{**axis, "halo": halo}
            for axis in _space_axes(card, lambda axis: {"tensor_id": INPUT, "axis_id": axis})]
    return {
        "id": OUTPUT,
        "description": f"{card.output_meaning}; crop {halo} px from each side of a tile",
        "axes": [{"type": "batch"}, *axes, {"type": "channel", "channel_names": ["membrane"]}],
        "test_tensor": files.test_output.source(),
        "sample_tensor": files.sample_output.source(),
        "data": {"type": "float32", "range": [0.0, 1.0]},
    }


def _weights(card: ModelCard, files: PackageFiles, project: Project) -> dict:
    return {
        "tensorflow_saved_model_bundle": {
            **files.saved_model.source(),
            "tensorflow_version": project.tensorflow,
            "comment": f"the full Keras model (trained with TensorFlow {card.versions.get('tensorflow', '?')}), "
                       "saved with a `serve` endpoint for keras.layers.TFSMLayer",
        },
        "onnx": {
            **files.onnx.source(),
            "opset_version": OPSET,
            "parent": "tensorflow_saved_model_bundle",
            "comment": f"converted by tf2onnx {project.tf2onnx}; agreement with the full model in the README",
        },
    }


def _config(card: ModelCard, files: PackageFiles) -> dict:
    arch, training = card.architecture, card.training
    return {
        "bioimageio": {
            "architecture_type": "2D U-Net",
            "architecture_description": (
                f"depth {arch.depth}, widths {'-'.join(map(str, arch.widths))}, {arch.block} blocks, "
                f"{arch.upsampling} up-sampling, sigmoid output; receptive field radius "
                f"{arch.receptive_field_radius} px"
            ),
            "modality": "serial-section transmission electron microscopy",
            "target_structure": ["membranes between neurites"],
            "task": "semantic segmentation (membrane probability)",
            "model_parameter_count": arch.params,
            "training": {"training_epochs": training.epochs,
                         "loss_function": training.loss,
                         "training_duration": round(training.duration_s / 3600, 3)},
        },
        "emseg_lite": {
            "card": files.card.name,
            "postprocessing": dataclasses.asdict(card.postprocessing),
            "mask": dataclasses.asdict(card.mask),
            "tiling": {"tile": card.tiling.tile, "halo": card.tiling.halo, "align": card.tiling.align},
        },
    }
