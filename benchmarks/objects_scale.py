"""Objects at a lab's scale: 100 sections of 4096 x 4096 px through ``volume --neurons``.

The volume is built from vnc-stack2's four real sections (serial-section TEM): each
z section a 4 x 4 mosaic of them in four orientations, shifted a few pixels per
section so that structures continue through z as in a serial stack. It is
written once as a zarr array under runs/. Then, as a user runs it:

    emseg-lite volume VOLUME -o OUT --neurons --voxels anisotropic --workers 2

timed by the command's own lines (segmentation, then objects), with the peak
resident memory of the workers (as the command reports it) and of the client
process, which holds the global merge (``/proc``'s VmHWM of the command).

Then resume at that scale: the objects are made again from scratch (another
scoring first, so the stored ones are discarded), that run is killed with SIGKILL
half-way through its fragments, and the same command again must finish with
``labels/fragments`` and ``labels/neurons`` identical, chunk by chunk, to the first
run's.

``python -m benchmarks.objects_scale DATA OUT [SECTIONS SIDE]``: about 7 min on 2
cores for the default 100 x 4096; writes OUT/objects_scale.json and .md.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.objects_study import _machine

CLI = str(Path(sys.executable).parent / "emseg-lite")


def build(data: Path, path: Path, sections: int, side: int) -> None:
    import tifffile
    import zarr

    if path.exists():
        return
    pages = [tifffile.imread(data / "vnc-stack2" / f"0{i}.tif") for i in range(4)]
    tiles = side // pages[0].shape[0]
    mosaic = np.block([[np.rot90(pages[(r + c) % 4], k=r) for c in range(tiles)] for r in range(tiles)])
    array = zarr.open_array(str(path), mode="w", shape=(sections, side, side), chunks=(1, 1024, 1024), dtype=np.uint8)
    for z in range(sections):
        array[z] = np.roll(mosaic, (3 * z, 2 * z), axis=(0, 1))


def main(data: Path, out: Path, sections: int = 100, side: int = 4096) -> None:
    volume = Path("runs") / f"objects-scale-{sections}x{side}.zarr"
    volume.parent.mkdir(exist_ok=True)
    build(data, volume, sections, side)
    output = Path("runs") / "objects-scale.ome.zarr"
    start = time.perf_counter()
    process = subprocess.Popen([CLI, "volume", str(volume), "-o", str(output), "--neurons",
                                "--voxels", "anisotropic", "--workers", "2", "--overwrite"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak_client = 0.0
    while process.poll() is None:
        peak_client = max(peak_client, _hwm_mb(process.pid))
        time.sleep(1.0)
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - start
    if process.returncode:
        sys.exit(f"volume --neurons failed:\n{stderr[-2000:]}")
    seg = re.search(r"([\d.]+) megapixels in ([\d.]+) s .*peak RSS per worker (\d+) MB", stderr)
    obj = re.search(r"neurons at threshold [\d.]+ \(.*?\) in ([\d.]+) s; worker time: ([\d.]+) s .*"
                    r"peak RSS per worker (\d+) MB", stderr)
    joined = re.search(r"region ids joined across \d+ block\(s\) in ([\d.]+) s", stderr)
    graph = re.search(r"graph: (\d+) fragments, (\d+) merges in ([\d.]+) s", stderr)
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": _machine(),
        "volume": f"{sections} x {side} x {side}", "megapixels": float(seg.group(1)),
        "segmentation_s": float(seg.group(2)), "seams_s": float(joined.group(1)) if joined else 0.0,
        "objects_s": float(obj.group(1)), "objects_worker_s": float(obj.group(2)),
        "fragments": int(graph.group(1)), "merges": int(graph.group(2)), "graph_s": float(graph.group(3)),
        "peak_rss_worker_segmentation_mb": int(seg.group(3)), "peak_rss_worker_objects_mb": int(obj.group(3)),
        "peak_rss_client_mb": round(peak_client), "wall_s": wall,
    }
    result["objects_share_of_segmentation"] = result["objects_s"] / result["segmentation_s"]
    result.update(resume(output))
    out.mkdir(parents=True, exist_ok=True)
    (out / "objects_scale.json").write_text(json.dumps(result, indent=2) + "\n")
    table = (f"| {result['volume']} px, {result['machine']}, {result['date']} | |\n|---|---:|\n"
             f"| segmentation (2 workers) | {result['segmentation_s']:.0f} s "
             f"({result['megapixels'] / result['segmentation_s']:.1f} MP/s) |\n"
             f"| region ids joined across blocks | {result['seams_s']:.0f} s |\n"
             f"| objects: fragments, merges, graph, neurons | {result['objects_s']:.0f} s "
             f"({100 * result['objects_share_of_segmentation']:.0f} % of segmentation) |\n"
             f"| fragments / merges in the graph | {result['fragments']} / {result['merges']} "
             f"(graph {result['graph_s']:.1f} s) |\n"
             f"| peak RSS per worker: segmentation, objects | {result['peak_rss_worker_segmentation_mb']} MB, "
             f"{result['peak_rss_worker_objects_mb']} MB |\n"
             f"| peak RSS of the client (global merge) | {result['peak_rss_client_mb']} MB |\n"
             f"| killed with SIGKILL after {result['resume_killed_after_blocks']} of {result['resume_blocks']} "
             f"blocks' fragments, then again | {result['resume_s']:.0f} s, labels "
             f"{'identical' if result['resume_identical'] else 'DIFFERENT'} to the uninterrupted run's |\n")
    (out / "objects_scale.md").write_text(table)
    print(table)


def resume(output: Path) -> dict:
    """Objects again, killed with SIGKILL during their fragments, then finished: identical?"""
    import zarr

    before = _digests(output)
    scoring = zarr.open_group(str(output), mode="r").attrs["emseg-lite"]["objects"]["scoring"]
    command = [CLI, "neurons", str(output), "--voxels", "anisotropic", "--workers", "2", "--quiet"]
    subprocess.run([*command, "--scoring", "mean"], check=True, capture_output=True)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    while process.poll() is None and not _half_fragmented(output, scoring):
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    flags = np.asarray(zarr.open_group(str(output), mode="r")["objects/fragmented"])
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return {"resume_killed_after_blocks": int(flags.sum()), "resume_blocks": int(flags.size),
            "resume_s": time.perf_counter() - start, "resume_identical": _digests(output) == before}


def _half_fragmented(output: Path, scoring: str) -> bool:
    """Whether the objects being made with ``scoring`` have half their blocks' fragments."""
    import zarr

    try:
        group = zarr.open_group(str(output), mode="r")
        if group.attrs["emseg-lite"]["objects"]["scoring"] != scoring:
            return False
        flags = np.asarray(group["objects/fragmented"])
    except (KeyError, ValueError, OSError):  # caught between the objects' metadata writes
        return False
    return 2 * int(flags.sum()) >= flags.size


def _digests(output: Path) -> dict:
    """sha256 of every chunk of the objects' label arrays."""
    import zarr

    group = zarr.open_group(str(output), mode="r")
    digests = {}
    for name in ("fragments", "neurons"):
        array = group[f"labels/{name}/0"]
        rows, cols = array.chunks[1:]
        for y in range(0, array.shape[1], rows):
            for x in range(0, array.shape[2], cols):
                digests[name, y, x] = hashlib.sha256(np.ascontiguousarray(array[:, y:y + rows, x:x + cols])).hexdigest()
    return digests


def _hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


if __name__ == "__main__":
    if len(sys.argv) not in (3, 5):
        sys.exit("usage: python -m benchmarks.objects_scale DATA OUT [SECTIONS SIDE]")
    main(Path(sys.argv[1]), Path(sys.argv[2]), *map(int, sys.argv[3:]))
