"""The fine-tuning figures of docs/finetune-recipe.md.

A model fine-tuned on five labelled sections (``make finetune``, then ``make export``)
and the embedded zero-shot model, scored on a test volume from another block of
tissue, each with its own card's post-processing, under both V_rand / V_info
definitions -- what ``emseg-lite evaluate [--metric isbi]`` prints. Nothing here
chooses anything: the recipe and the run are fixed before the test volume is read.

``make finetune-study`` runs it on fib-gala (the lab volume the recipe targets) and ``make
carryover-study`` on NeuroProof's FIB-SEM cube, a volume the recipe was never
developed on. ``python -m benchmarks.finetune_study IMAGES LABELS MODELS``: about 10 s
on 2 cores for fib-gala's 50 test sections once the run is exported.
"""
from __future__ import annotations

import sys
from pathlib import Path

from emseg_lite.runtime.core.card import ModelCard
from emseg_lite.runtime.pipelines.datasets import load_labeled
from emseg_lite.runtime.pipelines.evaluate import score_volume
from emseg_lite.runtime.pipelines.segmenter import Segmenter

METRICS = ("adapted", "isbi")


def main(images: Path, labels: Path, models: Path) -> None:
    test = load_labeled(images, labels)
    rows = {"embedded int8, zero-shot": "int8",
            "fine-tuned int8": str(models / "emseg-int8.tflite"),
            "fine-tuned float32": str(models / "emseg-float32.tflite")}
    print(f"{images.name}, {len(test.names)} sections; each model with its own card's post-processing\n")
    print("| model | adapted V_rand | adapted V_info | ISBI V_rand | ISBI V_info |\n|---|---:|---:|---:|---:|")
    for label, model in rows.items():
        segmenter = Segmenter.load(model)
        maps = [segmenter.probabilities(image) for image in test.images]
        figures = []
        for metric in METRICS:
            mean = score_volume(maps, test, {"card": segmenter.card.postprocessing}, metric).mean("card")
            figures += [f"{mean.v_rand:.4f}", f"{mean.v_info:.4f}"]
        print(f"| {label} | {' | '.join(figures)} |", flush=True)
    card = ModelCard.load(models / "emseg-int8.json")
    comparison = card.comparison
    print(f"\nrun: sections {card.training.train_sections} trained, {card.training.val_sections} held out; "
          f"{card.training.duration_s:.0f} s on {card.training.machine}")
    print(f"card recommends: {comparison.use} ({comparison.reason})")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
