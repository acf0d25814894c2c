"""3-D objects on fib-gala, as the README reports them: choose on the train volume, score on the test volume.

The model is the fine-tuning recipe's (``make finetune-study``: five train sections).
Both volumes go through ``emseg-lite volume --neurons --voxels isotropic`` (FIB-SEM);
on the *train* volume every scoring function and a sweep of thresholds are tried by
re-thresholding (``emseg-lite neurons --threshold``) and the best VI total is kept;
then the test volume is scored once, with that choice, by ``emseg-lite evaluate
--objects``. Also shown: the fragments alone (a watershed, no agglomeration), and the
figures gala's paper reports on the same test volume.

``python -m benchmarks.objects_study FIB_GALA MODELS OUT``: about 2 min on 2 cores.
Writes OUT/objects.json, OUT/objects.md and OUT/objects_fib_gala.png (orthogonal
views of the test volume's neurons, ids coloured); the volumes stay in runs/objects-study.
"""
from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CLI = str(Path(sys.executable).parent / "emseg-lite")
SCORINGS = ("mean", "quantile-50", "quantile-75")
THRESHOLDS = tuple(round(0.30 + 0.05 * i, 2) for i in range(9))
GALA = {"watershed alone": (1.648, 0.185, None), "gala, learned agglomeration": (0.305, 0.365, 0.888)}
"""VI split, merge and adapted Rand F that gala's paper and repository report for fib-gala's test volume."""


def cli(*args) -> str:
    result = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"emseg-lite {' '.join(map(str, args))} failed:\n{result.stderr}")
    return result.stdout


def scores(output: Path, labels: Path) -> dict:
    return json.loads(cli("evaluate", "--objects", output, "--labels", labels, "--json"))


def main(fib: Path, models: Path, out: Path) -> None:
    model = models / "emseg-int8.tflite"
    work = Path("runs") / "objects-study"
    work.mkdir(parents=True, exist_ok=True)
    volumes = {}
    for name in ("train", "test"):
        volumes[name] = work / f"{name}.ome.zarr"
        cli("volume", fib / f"{name}-volume.tif", "-o", volumes[name], "--neurons", "--voxels", "isotropic",
            "--model", model, "--overwrite", "-q")
    sweep = []
    for scoring in SCORINGS:
        for threshold in THRESHOLDS:
            cli("neurons", volumes["train"], "--voxels", "isotropic", "--model", model, "--scoring", scoring,
                "--threshold", threshold, "-q")
            figures = scores(volumes["train"], fib / "train-labels.tif")["neurons"]
            sweep.append({"scoring": scoring, "threshold": threshold, **figures})
            print(f"train {scoring:<12} {threshold:.2f}: VI {figures['vi']:.3f} ARAND F {figures['arand_f']:.3f}",
                  flush=True)
    best = min(sweep, key=lambda row: row["vi"])
    start = time.perf_counter()
    cli("neurons", volumes["test"], "--voxels", "isotropic", "--model", model, "--scoring", best["scoring"],
        "--threshold", best["threshold"], "-q")
    seconds = time.perf_counter() - start
    test = scores(volumes["test"], fib / "test-labels.tif")
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": _machine(),
              "model": str(model), "chosen_on_train": best, "test": test, "train_sweep": sweep,
              "test_neurons_seconds": seconds}
    (out / "objects.json").write_text(json.dumps(result, indent=2) + "\n")
    table = _table(best, test)
    (out / "objects.md").write_text(table)
    print(table)
    _picture(volumes["test"], out / "objects_fib_gala.png")


def _table(best: dict, test: dict) -> str:
    rows = ["| fib-gala test volume, 3-D, labelled voxels | VI split | VI merge | VI | ARAND F |",
            "|---|---:|---:|---:|---:|"]
    for label, key in (("emseg-lite neurons", "neurons"), ("emseg-lite fragments alone", "fragments")):
        s = test[key]
        rows.append(f"| {label} | {s['vi_split']:.3f} | {s['vi_merge']:.3f} | {s['vi']:.3f} | {s['arand_f']:.3f} |")
    for label, (split, merge, arand) in GALA.items():
        rows.append(f"| {label} (gala paper) | {split:.3f} | {merge:.3f} | {split + merge:.3f} | "
                    f"{'' if arand is None else f'{arand:.3f}'} |")
    return "\n".join(rows) + (f"\n\nScoring {best['scoring']}, threshold {best['threshold']}, chosen on the train "
                              f"volume (VI {best['vi']:.3f} there).\n")


def _picture(output: Path, path: Path) -> None:
    """Orthogonal views through the middle of the volume, each neuron in its own colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import zarr

    neurons = np.asarray(zarr.open_group(str(output), mode="r")["labels/neurons/0"])
    _, ids = np.unique(neurons, return_inverse=True)
    ids = ids.reshape(neurons.shape)
    colours = np.random.default_rng(0).uniform(0.15, 1.0, size=(ids.max() + 1, 3))
    z, y, x = (n // 2 for n in ids.shape)
    views = {f"xy, section {z}": ids[z], f"xz, row {y}": ids[:, y, :], f"yz, column {x}": ids[:, :, x].T}
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.2), gridspec_kw={"width_ratios": [200, 200, 50]})
    for axis, (title, view) in zip(axes, views.items()):
        axis.imshow(colours[view], interpolation="nearest")
        axis.set_title(title, fontsize=9)
        axis.axis("off")
    figure.suptitle("fib-gala test volume: emseg-lite neurons, one colour per object", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def _machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    import os

    return f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores, {model}"


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: python -m benchmarks.objects_study FIB_GALA MODELS OUT")
    main(*map(Path, sys.argv[1:]))
