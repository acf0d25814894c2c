"""The package's README.md (its ``documentation``), generated from the ONNX model's card.

Every number in it -- data, sections, pixel size, normalisation, halo,
post-processing, validation figures, agreement of the ONNX weights -- is read
from the card; the prose around them says what the numbers mean for a user of
Fiji, napari or bioimageio.core.
"""
from __future__ import annotations

from pathlib import Path

from emseg_lite.runtime.core.card import Evaluation, ModelCard

from .rdf import CITATIONS, min_size

KNOWN_DATA = {
    "isbi2012": "the ISBI 2012 challenge's 30 ssTEM sections of 512 x 512 px of the Drosophila "
                "first-instar larva ventral nerve cord (Cardona et al. 2010), 50 nm thick, traced "
                "membranes between neurites",
}


def model_readme(card: ModelCard, name: str, package: str) -> str:
    """Markdown for the package ``package`` (its file name) named ``name``."""
    return "\n".join((_summary(name), _data(card), _network(card), _postprocessing(card), _validation(card),
                      _use(package), _limits(card), _provenance(card), _cite()))


def _summary(name: str) -> str:
    return f"""# {name}

Membrane maps of serial-section transmission electron microscopy (ssTEM) slices of
neural tissue. The network gives each pixel the probability that it lies on a
membrane **between** neurites (1 = membrane); membranes of mitochondria and vesicles
inside a cell are not boundaries and get low values. It is the float model of
emseg-lite, whose slim runtime runs its int8 TFLite conversion on microscope-side
PCs and boards; this package carries the same network as **ONNX** and as a
**TensorFlow SavedModel** for Fiji (deepImageJ), napari and bioimageio.core.
"""


def _data(card: ModelCard) -> str:
    t = card.training
    pixel = f"{t.pixel_size_nm:g} x {t.pixel_size_nm:g} nm" if t.pixel_size_nm else "not recorded in the model card"
    held_out = _sections(t.val_sections) if t.val_sections else "none (every labelled section was used for training)"
    data = Path(t.data).name
    about = f" -- {KNOWN_DATA[data]}" if data in KNOWN_DATA else ""
    return f"""## Training data

- Data: `{data}`{about}.
- Pixel size: **{pixel}**. Rescale other data to about this pixel size first.
- Sections trained on: {_sections(t.train_sections)}; held out for validation: {held_out}.
- {t.epochs} epochs, loss `{t.loss}`, seed {t.seed}.
"""


def _network(card: ModelCard) -> str:
    a, n, tiling = card.architecture, card.normalization, card.tiling
    return f"""## Input, output, tiling

- Input `raw`: axes (batch, y, x, channel), one channel, float32. Any grey-value
  type works: the package's preprocessing scales each slice so that its
  {n.low_percentile:g}th and {n.high_percentile:g}th percentiles become 0 and 1 and clips to
  [0, 1] (`scale_range` + `clip`), exactly as emseg-lite does.
- Size: any multiple of {tiling.align} px per side (the network down-samples {a.depth} times),
  at least {min_size(card)} px.
- Output `membrane`: same axes and size, float32 membrane probability in [0, 1].
- Halo: **{tiling.halo} px**. When a large slice is processed in tiles, crop {tiling.halo} px from
  every side of each tile's output (deepImageJ and bioimageio.core do this from the
  description). The network sees {a.receptive_field_radius} px around each pixel; beyond
  {tiling.halo} px the tile border changed the probability by at most
  {tiling.halo_max_error:.2g} on validation (tolerance {tiling.halo_tolerance:g}). At the border of
  the slice itself emseg-lite mirrors the slice (numpy's `reflect`); bioimageio.core
  pads symmetrically (edge pixel repeated), so within about {tiling.halo} px of the slice
  border the two can differ.
- Network: 2-D U-Net, depth {a.depth}, widths {'-'.join(map(str, a.widths))}, {a.block} blocks,
  {a.upsampling} up-sampling, {a.params:,} parameters.
"""


def _postprocessing(card: ModelCard) -> str:
    p, m = card.postprocessing, card.mask
    return f"""## Post-processing: from probability to membrane mask

The package outputs probabilities; the mask is a separate step, chosen on the
validation sections:

- **Threshold**: membrane where probability > **{p.threshold:g}**.
- **Watershed** (emseg-lite's default, `method: {p.method}`): smooth the map with a
  Gaussian of sigma {p.smoothing_sigma:g} px; seeds are 4-connected regions below
  {p.seed_threshold:g} with at least {p.min_seed_area} px; flood them in {p.levels} probability
  levels; the borders between the flooded regions become closed 1-pixel membranes.
  emseg-lite's `segment` command runs it.

emseg-lite writes masks with {m.membrane_value} = membrane and {m.cell_value} = inside a cell (the ISBI
convention). These parameters are also in the rdf (`config.emseg_lite`) and in the
attached model card.
"""


def _validation(card: ModelCard) -> str:
    rows = [("full Keras model", card.validation.get("full_model")), ("ONNX weights", card.validation.get("variant"))]
    table = [f"| {label} | {method} | {s.v_rand:.4f} | {s.v_info:.4f} | {s.pixel_error:.3f} |"
             for label, evaluation in rows if evaluation is not None
             for method, s in _methods(evaluation)]
    a = card.agreement
    if table:
        figures = ("| model | post-processing | V_rand | V_info | pixel error |\n|---|---|---:|---:|---:|\n"
                   + "\n".join(table))
        where = f"ISBI figures on the held-out sections {_sections(card.training.val_sections)}"
    else:
        figures = "This model was trained on every labelled section: there are no held-out figures."
        where = "No held-out sections"
    agreement = ""
    if a is not None:
        agreement = (
            f"\n\nThe ONNX weights against the full Keras model, over every pixel of those sections: "
            f"largest probability difference **{a.max_abs_diff:.2g}** (allowed: {a.max_abs_diff_limit:g}), "
            f"masks at threshold {card.postprocessing.threshold:g} agree on **{100 * a.pixel_agreement:.4f} %** "
            f"of pixels (required: {100 * a.floor:g} %), membrane Dice {a.membrane_dice:.4f}. The "
            f"SavedModel is the Keras graph itself; `bioimageio test` checks that both formats "
            f"reproduce the test output (a held-out section through the full model) within 1e-3."
        )
    return f"""## Validation

{where} (V_rand and V_info after border thinning, foreground-restricted, as in
Arganda-Carreras et al. 2015; higher is better; pixel error is higher after watershed
by design, since it draws 1-pixel membranes where the labels have 5-10 px ones):

{figures}{agreement}

To validate on your own data: segment a few sections you have traced, then
`emseg-lite evaluate --images ... --labels ...` gives the same figures.
"""


def _use(package: str) -> str:
    return f"""## Using the package

- **Fiji / deepImageJ 3**: install `{package}` with deepImageJ's model installer (it takes
  a local zip file), open a slice and start *DeepImageJ Run* with this model. deepImageJ
  applies the preprocessing and, for large slices, tiles with the halo. Prefer the ONNX
  weights where it offers a choice: its TensorFlow engine is older than the TensorFlow
  that wrote the SavedModel. Threshold the output in Fiji (*Image > Adjust > Threshold*)
  at the value above, or run emseg-lite's watershed on it.
- **napari**: open the zip with a bioimage.io plugin, or run bioimageio.core as below
  and `viewer.add_image(probability)`.
- **Python** (`pip install bioimageio.core onnxruntime`):
  ```python
  from bioimageio.core import load_model_description, predict
  model = load_model_description("{package}")
  sample = predict(model=model, inputs={{"raw": image[None, :, :, None].astype("float32")}})
  probability = sample.members["membrane"].data
  ```
- **emseg-lite** itself runs the int8 TFLite conversion of this network with LiteRT,
  then the watershed: `emseg-lite segment slice.png`.
"""


def _limits(card: ModelCard) -> str:
    t = card.training
    pixel = f"{t.pixel_size_nm:g} nm" if t.pixel_size_nm else "the training pixel size"
    return f"""## Intended use and limits

- Intended: 2-D membrane maps of ssTEM sections of insect neural tissue at about
  {pixel} per pixel, as the first step of neurite segmentation (connectomics), where a
  person proofreads the result.
- Trained on {len(t.train_sections)} sections of one animal: other species, stages,
  stains, section thicknesses or modalities (FIB-SEM, SBEM, cryo-EM) need checking on
  traced sections, and usually fine-tuning.
- Each slice is processed alone: no 3-D context, so membranes running parallel to the
  section plane are missed.
- The probability is not calibrated; thresholds and watershed parameters were chosen
  on the validation sections and the figures above are slightly optimistic for them.
"""


def _provenance(card: ModelCard) -> str:
    t = card.training
    versions = ", ".join(f"{k} {v}" for k, v in card.versions.items())
    return f"""## Provenance

Trained by `{t.command}` on {t.date[:10]} ({t.machine}, {t.duration_s / 60:.0f} min). Versions: {versions}.
The attached model card (`{card.model.file.rsplit('.', 1)[0]}.json`) holds every number above.
"""


def _cite() -> str:
    entries = "\n".join(f"- {c['text']}. doi:{c['doi']}" for c in CITATIONS)
    return f"""## Cite

{entries}
"""


def _methods(evaluation: Evaluation):
    return (("threshold", evaluation.threshold), ("watershed", evaluation.watershed))


def _sections(indices: list[int]) -> str:
    if not indices:
        return "none"
    if indices == list(range(indices[0], indices[-1] + 1)):
        return f"{indices[0]}-{indices[-1]}"
    return ", ".join(map(str, indices))
