"""The working pixel of 3-D objects on serial sections, chosen by measurement on ISBI 2012.

ISBI 2012's 30 train sections are serial-section TEM at 4 x 4 x 50 nm with a label
for every section. The labels are 2-D, so what is scored is each section's cut
through the 3-D objects against that section's labelled cells (VI split and merge,
adapted Rand F on the cells, averaged over sections): a neuron that leaks through z
into its neighbour shows as a merge in the sections where both are cut. Splits of
one neuron between sections cannot be seen this way.

The membrane probability is the embedded model's, stored as ``volume`` stores it
(8 bits); each pool max-pools it in xy before fragments and merges
(``post.objects.fragments_and_merges``), at the card's scoring and threshold, and the
neurons come back to every pixel as ``neurons`` writes them (``post.objects.unpooled``,
each pixel of a working pixel that holds membrane from its nearest clear one). Timed: fragments and merges of the whole stack (one block of 30 x 512 x 512).

``python -m benchmarks.objects_pool DATA OUT``: about 1 min on 2 cores; writes
OUT/objects_pool.json and .md.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from benchmarks.objects_study import _machine

POOLS = (1, 2, 4, 8, 16)
PIXEL_NM, SECTION_NM = 4.0, 50.0


def main(data: Path, out: Path) -> None:
    from emseg_lite.runtime import Segmenter
    from emseg_lite.runtime.post.metrics import object_scores
    from emseg_lite.runtime.post.objects import fragments_and_merges, pooled, unpooled, xy_pool

    train = data / "isbi2012" / "train"
    count = len(list((train / "images").glob("*.png")))
    images = [np.asarray(Image.open(train / "images" / f"{z}.png")) for z in range(count)]
    truth = np.stack([ndimage.label(np.asarray(Image.open(train / "labels" / f"{z}.png")) > 127)[0]
                      for z in range(count)])
    segmenter = Segmenter.load()
    stored = np.stack([np.round(segmenter.probabilities(image) * 255) for image in images]).astype(np.uint8)
    probability = stored.astype(np.float32) / 255.0
    objects = segmenter.card.objects
    rows = []
    for pool in POOLS:
        start = time.perf_counter()
        working = pooled(probability, pool)
        fragments, history = fragments_and_merges(working, 0, objects.scoring)
        seconds = time.perf_counter() - start
        cells = history.merge(objects.threshold).apply(fragments, 0, int(fragments.max()))
        neurons = unpooled(cells, pool, *probability.shape[1:], cells.dtype, working)
        cuts = [object_scores(truth[z], neurons[z]) for z in range(count)]
        rows.append({"pool": pool, "working_pixel_nm": pool * PIXEL_NM, "seconds": round(seconds, 3),
                     "fragments": int(np.unique(fragments).size),
                     "vi_split": float(np.mean([c.vi_split for c in cuts])),
                     "vi_merge": float(np.mean([c.vi_merge for c in cuts])),
                     "arand_f": float(np.mean([c.arand_f for c in cuts]))})
    chosen = xy_pool(SECTION_NM, PIXEL_NM, False, objects.serial_pool)
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": _machine(),
              "volume": f"ISBI 2012 train, {count} x 512 x 512, {PIXEL_NM:g} x {PIXEL_NM:g} x {SECTION_NM:g} nm",
              "scoring": objects.scoring, "threshold": objects.threshold, "xy_pool": chosen, "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "objects_pool.json").write_text(json.dumps(result, indent=2) + "\n")
    table = (f"{result['volume']}; {result['machine']}, {result['date']}; the rule's pool: {chosen}\n\n"
             "| pool | working pixel | fragments | VI split | VI merge | ARAND F | fragments and merges |\n"
             "|---:|---:|---:|---:|---:|---:|---:|\n"
             + "".join(f"| {r['pool']} | {r['working_pixel_nm']:g} nm | {r['fragments']} | {r['vi_split']:.3f} | "
                       f"{r['vi_merge']:.3f} | {r['arand_f']:.3f} | {r['seconds']:.2f} s |\n" for r in rows))
    (out / "objects_pool.md").write_text(table)
    print(table)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m benchmarks.objects_pool DATA OUT")
    main(Path(sys.argv[1]), Path(sys.argv[2]))
