"""`emseg-lite watch` keeping up with a simulated microscope: latency from the moment a
section's file is settled to the moment its mask is written, against the time
`emseg-lite segment` takes for that section.

The microscope writes real 1024 x 1024 sections (vnc-stack2, in four orientations)
as TIFFs in five chunks 0.2 s apart, one section every 1.5 s; watch polls every
0.1 s and calls a file settled after 0.5 s unchanged.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CLI = str(Path(sys.executable).parent / "emseg-lite")
SECTIONS = 8


def test_watch_latency(benchmark, record, data_root, tmp_path):
    import tifffile

    from emseg_lite.runtime.pipelines import batch, outputs
    from emseg_lite.runtime.pipelines.segmenter import Segmenter

    sections = [np.rot90(tifffile.imread(data_root / "vnc-stack2" / f"0{i % 4}.tif"), i // 4) for i in range(SECTIONS)]
    staged = tmp_path / "staged"
    staged.mkdir()
    for i, image in enumerate(sections):
        tifffile.imwrite(staged / f"section_{i:03d}.tif", image)
    segmenter = Segmenter.load("int8")
    reference = staged / "section_000.tif"
    options = batch.Options(out_dir=tmp_path / "ref", overwrite=True)
    outputs.check_out_dir(tmp_path / "ref")
    timings = []
    for _ in range(4):
        start = time.perf_counter()
        list(batch.run(segmenter, [reference], options))
        timings.append(time.perf_counter() - start)
    segment_s = float(np.median(timings[1:]))

    inbox, out, log = tmp_path / "inbox", tmp_path / "out", tmp_path / "log.jsonl"
    inbox.mkdir()
    watch = subprocess.Popen([CLI, "watch", str(inbox), "-o", str(out), "--interval", "0.1", "--settle", "0.5",
                              "--log-json", str(log), "-q"], start_new_session=True)

    def acquire():
        for path in sorted(staged.glob("*.tif")):
            payload = path.read_bytes()
            with open(inbox / path.name, "wb") as fh:
                for k in range(5):
                    fh.write(payload[k * len(payload) // 5 : (k + 1) * len(payload) // 5])
                    fh.flush()
                    time.sleep(0.2)
            time.sleep(0.5)
        deadline = time.monotonic() + 60
        while (not log.exists() or len(log.read_text().splitlines()) < SECTIONS) and time.monotonic() < deadline:
            time.sleep(0.1)

    benchmark.pedantic(acquire, rounds=1, iterations=1)
    os.killpg(watch.pid, signal.SIGTERM)
    watch.wait(timeout=60)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(records) == SECTIONS
    latencies = np.array([r["latency_s"] for r in records])
    record(origin="embedded", variant="int8, watch", threads="default", sections=SECTIONS,
           segment_ms=round(1000 * segment_s, 1), latency_median_ms=round(1000 * float(np.median(latencies)), 1),
           latency_max_ms=round(1000 * float(latencies.max()), 1),
           latency_to_segment=round(float(np.median(latencies)) / segment_s, 2))
    print(f"\nwatch: settled-to-written latency median {1000 * np.median(latencies):.0f} ms, max "
          f"{1000 * latencies.max():.0f} ms; segment of one section {1000 * segment_s:.0f} ms")
