"""The dock widget: segment a layer, proofread its membranes, fine-tune on the corrections.

Every long step runs in a napari worker thread (``jobs``), with a progress bar and
a cancel button, so the viewer never freezes; results arrive as layers. A problem
the user can fix (an RGB or 4-D layer, a model without its card, a fine-tune with
nothing painted, a missing train extra) is one line in the widget and a napari
notification -- never a traceback dialog -- and leaves the layers as they were.

Proofreading edits the ``<image> membrane`` or ``<image> regions`` label layer
(``proofread``); each section an edit touches is saved at once (``corrections``),
into the folder of the image those layers belong to. "Fine-tune and re-segment"
saves them again as the layers hold them now, trains on every saved section and
segments the image again with the new model.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import napari
import numpy as np
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..core.errors import EmsegError
from ..engine.model import default_threads
from ..pipelines.segmenter import Segmenter
from . import jobs
from .corrections import Corrections
from .proofread import Proofread

MODELS = ("int8", "float16", "float16-2048", "float32")
ACCELERATORS = ("auto", "cpu", "gpu")
POST = ("model card's", "watershed", "none")


class SegmentWidget(QWidget):
    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = viewer
        self.worker = None
        self.job: jobs.Finetune | None = None
        self.proofread: Proofread | None = None  # the layers of the image segmented last

        self.image = QComboBox()
        self.model = QComboBox()
        self.model.setEditable(True)
        self.model.addItems(MODELS)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.accelerator = QComboBox()
        self.accelerator.addItems(ACCELERATORS)
        self.post = QComboBox()
        self.post.addItems(POST)
        self.neurons = QCheckBox("3-D neurons (a stack of serial sections; the volume extra)")
        self.threads = QSpinBox()
        self.threads.setRange(1, 256)
        self.threads.setValue(default_threads())
        self.run = QPushButton("Segment")
        self.run.clicked.connect(self.segment)
        self.cancel = QPushButton("Cancel")
        self.cancel.setEnabled(False)
        self.cancel.clicked.connect(self._cancel)
        self.progress = QProgressBar()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.quick = QCheckBox("quick check (a few steps: tests the pipeline, not the model)")
        self.retrain = QPushButton("Fine-tune and re-segment")
        self.retrain.clicked.connect(self.finetune)
        self.saved = QLabel("Membrane layer: paint 1 to split a merged cell, erase (0) to merge two fragments. "
                            "Regions or neurons layer: fill one with its neighbour's id to merge, paint 0 to split. "
                            "Each edited section is saved at once.")
        self.saved.setWordWrap(True)

        form = QFormLayout()
        form.addRow("image", self.image)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model, 1)
        model_row.addWidget(browse)
        form.addRow("model", model_row)
        form.addRow("accelerator", self.accelerator)
        form.addRow("post-processing", self.post)
        form.addRow("threads", self.threads)
        form.addRow("", self.neurons)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run)
        buttons.addWidget(self.cancel)
        proofread = QGroupBox("Proofread and retrain")
        box = QVBoxLayout(proofread)
        for widget in (self.saved, self.quick, self.retrain):
            box.addWidget(widget)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(proofread)
        layout.addStretch(1)

        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(self._refresh_images)
        self._refresh_images()

    # -- segmenting ----------------------------------------------------------------------------

    def segment(self) -> None:
        """Segment the chosen image layer in a worker thread; results replace earlier ones as layers."""
        try:
            layer, pages = self._pixels()
            segmenter = Segmenter.load(self.model.currentText().strip() or None, threads=self.threads.value(),
                                       accelerator=self.accelerator.currentText())
        except (EmsegError, ValueError) as exc:
            return self.tell(str(exc), error=True)
        if self.neurons.isChecked() and (problem := jobs.missing_volume_extra()):
            return self.tell(problem, error=True)
        post = segmenter.postprocessing(None if self.post.currentIndex() == 0 else self.post.currentText())
        neurons = self.neurons.isChecked() and pages.shape[0] > 1
        self._start(jobs.segment_stack(segmenter, pages, post, neurons), f"segmenting {layer.name}",
                    lambda result: self._show(layer, result, segmenter))

    def _pixels(self, name: str | None = None) -> tuple[napari.layers.Image, np.ndarray]:
        """The layer ``name`` (default: the chosen one) and its pixels as (z, y, x); ValueError
        naming the problem."""
        name = name or self.image.currentText()
        if not name:
            raise ValueError("open an EM image first (File > Open, or drag a file onto the viewer)")
        layer = self.viewer.layers[name]
        if layer.rgb:
            raise ValueError(f"{name}: an RGB image; emseg-lite segments gray EM sections (convert it to gray)")
        if layer.multiscale:
            layer_data = layer.data[0]
        else:
            layer_data = layer.data
        if layer_data.ndim not in (2, 3):
            raise ValueError(f"{name}: a {layer_data.ndim}-D array; emseg-lite segments a section (2-D) "
                             "or a stack of sections (3-D)")
        pages = np.asarray(layer_data)
        return layer, pages if pages.ndim == 3 else pages[np.newaxis]

    def _show(self, layer, result: jobs.Segmented, segmenter: Segmenter) -> None:
        squeeze = layer.data.ndim == 2
        shaped = {key: value[0] if squeeze and value is not None else value for key, value in vars(result).items()}
        scale = layer.scale
        self._put(f"{layer.name} probability", "image", shaped["probability"], scale, colormap="magma",
                  contrast_limits=(0.0, 1.0), opacity=0.5, blending="additive")
        regions = self._put(f"{layer.name} regions", "labels", shaped["regions"], scale, visible=False)
        ids = [regions]
        if shaped["neurons"] is not None:
            ids.append(self._put(f"{layer.name} neurons", "labels", shaped["neurons"], scale, opacity=0.4))
        membrane = self._put(f"{layer.name} membrane", "labels", shaped["membrane"], scale)
        self.proofread = Proofread(layer.name, Corrections(self._corrections_folder(layer), segmenter.card.mask),
                                   membrane, ids, lambda name: self._pixels(name)[1], self.tell)
        self.tell(f"{layer.name}: segmented with {Path(segmenter.net.path).name} on {segmenter.placement}")

    def _put(self, name: str, kind: str, data: np.ndarray, scale, **style):
        """Add layer ``name``, or give it new data. An image keeps the user's view of it; a
        label layer is replaced in its place, visibility and opacity kept, so that no undo
        replays earlier strokes onto the new masks (napari has no public way to clear it)."""
        layers = self.viewer.layers
        if kind == "image" and name in layers:
            layers[name].data = data
            return layers[name]
        if name in layers:
            old = layers[name]
            where, style = layers.index(old), {**style, "visible": old.visible, "opacity": old.opacity}
            layers.remove(old)
        else:
            where = None
        add = self.viewer.add_image if kind == "image" else self.viewer.add_labels
        layer = add(data, name=name, scale=scale, **style)
        if where is not None:
            layers.move(layers.index(layer), where)
        return layer

    # -- retraining ---------------------------------------------------------------------------

    def finetune(self) -> None:
        """Fine-tune on every saved correction, then segment the image again with the new model."""
        problem = jobs.missing_train_extra()
        if problem is None and (self.corrections is None or not self.corrections.sections()):
            problem = "nothing to fine-tune on: segment an image, then paint corrections on its membrane layer"
        if problem:
            return self.tell(problem, error=True)
        self.proofread.save(self.corrections.sections())
        run = Path(tempfile.mkdtemp(prefix="emseg-finetune-", dir=self.corrections.folder))
        self.job = jobs.Finetune(self.corrections.images, self.corrections.labels,
                                 self.corrections.polarity.membrane_value, run / "run", run / "models",
                                 self.quick.isChecked())
        self._start(self.job.steps(), "fine-tuning", self._retrained)

    def _retrained(self, model: Path) -> None:
        self.model.setEditText(str(model))
        self.image.setCurrentText(self.proofread.image)
        self.segment()

    @property
    def corrections(self) -> Corrections | None:
        """The corrections folder of the image segmented last."""
        return self.proofread.corrections if self.proofread else None

    def _corrections_folder(self, layer) -> Path:
        source = getattr(layer.source, "path", None)
        where = Path(source).parent if source else Path.cwd()
        return where / f"{layer.name}.emseg-corrections"

    # -- plumbing ------------------------------------------------------------------------------

    def _start(self, steps, what: str, then) -> None:
        self.worker = create_worker(lambda: (yield from steps), _ignore_errors=True)
        self.worker.yielded.connect(self._step)
        self.worker.returned.connect(then)
        self.worker.errored.connect(lambda exc: self.tell(str(exc), error=True))
        self.worker.aborted.connect(lambda: self.tell(f"{what}: cancelled; the layers are as they were"))
        self.worker.finished.connect(lambda worker=self.worker: self._idle(worker))
        self.run.setEnabled(False)
        self.retrain.setEnabled(False)
        self.cancel.setEnabled(True)
        self.progress.setRange(0, 0)
        self.tell(f"{what}…")
        self.worker.start()

    def _step(self, value) -> None:
        if isinstance(value, tuple):
            done, total = value
            self.progress.setRange(0, total)
            self.progress.setValue(done)
        else:
            self.status.setText(str(value)[-200:])

    def _idle(self, worker) -> None:
        if worker is not self.worker:  # a job that started another (fine-tune, then segment)
            return
        self.job = None
        self.run.setEnabled(True)
        self.retrain.setEnabled(True)
        self.cancel.setEnabled(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)

    def _cancel(self) -> None:
        if self.worker is not None:
            self.worker.quit()
        if self.job is not None:
            self.job.cancel()

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "A .tflite model (its .json card beside it)", "",
                                              "TFLite models (*.tflite)")
        if path:
            self.model.setEditText(path)

    def _refresh_images(self, event=None) -> None:
        current = self.image.currentText()
        names = [layer.name for layer in self.viewer.layers if isinstance(layer, napari.layers.Image)
                 and not layer.name.endswith(" probability")]
        self.image.clear()
        self.image.addItems(names)
        if current in names:
            self.image.setCurrentText(current)

    def tell(self, message: str, error: bool = False) -> None:
        """One line in the widget; errors also as a napari notification (no traceback)."""
        self.status.setText(message)
        if error:
            show_error(message)

