"""``python tests/compare_platforms.py WORK SLICE...``: the aarch64 results of `make check-aarch64`
against x86-64's (WORK/{x86_64,aarch64}/{float32,int8}/ masks and probabilities, evaluate.txt).

float32 must give the same masks on both: the float kernels differ only in summation order.
XNNPACK's int8 kernels round differently on ARM (NEON) and x86 (AVX2/AVX-512), so int8 masks
need only agree as well as the export gate asks of int8 against the full model, with the
same validation V_rand and V_info within ``V_TOLERANCE``.
"""
import sys
from pathlib import Path

import numpy as np

from emseg_lite.runtime.core.card import ModelCard, card_path_for
from emseg_lite.runtime.engine import registry
from emseg_lite.runtime.formats.reader import read_slices

V_TOLERANCE = 1e-3
ARCHES = ("x86_64", "aarch64")


def compare_slice(work: Path, model: str, slice: str) -> float:
    stem = Path(slice).stem

    def read(arch: str, kind: str) -> np.ndarray:
        (path,) = (work / arch / model).glob(f"{stem}_{kind}.*")
        return read_slices(path).pages

    masks = [read(arch, "mask") for arch in ARCHES]
    probs = [read(arch, "prob").astype(np.float64) for arch in ARCHES]
    agreement = float(np.mean(masks[0] == masks[1]))
    print(f"   {model:<8} {slice}: masks agree on {100 * agreement:.3f}% of pixels "
          f"({np.count_nonzero(masks[0] != masks[1])} differ), "
          f"max |probability difference| {np.max(np.abs(probs[0] - probs[1])):.3g}")
    return agreement


def mean_scores(path: Path) -> dict[str, tuple[float, float]]:
    """post-processing -> (V_rand, V_info) from the 'mean' rows of `emseg-lite evaluate`."""
    rows = [line.split() for line in path.read_text().splitlines()]
    return {row[1]: (float(row[4]), float(row[5])) for row in rows if row and row[0] == "mean"}


def main(work: Path, slices: list[str]) -> int:
    int8 = ModelCard.load(card_path_for(registry.resolve("int8")))
    failed = []
    for slice in slices:
        if compare_slice(work, "float32", slice) < 1.0:
            failed.append(f"float32 masks of {slice} differ")
    for slice in slices:
        if compare_slice(work, "int8", slice) < int8.agreement.floor:
            failed.append(f"int8 masks of {slice} agree on less than {100 * int8.agreement.floor:g}%")
    scores = {arch: mean_scores(work / arch / "evaluate.txt") for arch in ARCHES}
    for post, (x86, arm) in ((p, (scores["x86_64"][p], scores["aarch64"][p])) for p in scores["x86_64"]):
        print(f"   int8 {post:<10} V_rand {x86[0]:.4f} (x86-64) {arm[0]:.4f} (aarch64), "
              f"V_info {x86[1]:.4f} / {arm[1]:.4f}")
        if post == ("watershed" if int8.postprocessing.method == "watershed" else "none"):
            if max(abs(x86[0] - arm[0]), abs(x86[1] - arm[1])) > V_TOLERANCE:
                failed.append(f"int8 {post} scores differ by more than {V_TOLERANCE}")
    print("   FAILED: " + "; ".join(failed) if failed else "   passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2:]))
