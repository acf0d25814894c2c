"""``python -m benchmarks.report latest.json --out benchmarks/results``: markdown tables and plot.

Reads a pytest-benchmark JSON file and writes ``<name>.md`` (the tables the docs
show, with machine and date: latency and agreement per variant, big sections
end to end, block-wise agreement) and, when there are variants,
``latency_vs_agreement.png``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def rows(report: dict) -> list[dict]:
    out = []
    for bench in report["benchmarks"]:
        info, stats = bench["extra_info"], bench["stats"]
        flop = info.get("flop")
        out.append({
            "name": bench["name"].removeprefix("test_"), "origin": info.get("origin", ""),
            "variant": info.get("variant", ""), "threads": info.get("threads", ""),
            "median_ms": 1000 * stats["median"], "size_kb": info.get("size_bytes", 0) / 1024,
            "agreement": info.get("pixel_agreement"), "dice": info.get("membrane_dice"),
            "v_rand_diff": info.get("v_rand_diff"), "v_rand": info.get("v_rand"),
            "gflops": flop / stats["median"] / 1e9 if flop else None,
            "peak": info.get("machine_gflops"), "ms_per_slice": info.get("ms_per_slice"),
            "peak_rss_mb": info.get("peak_rss_mb"), "amx": info.get("amx"), "info": info,
        })
    return out


def markdown(report: dict, table: list[dict]) -> str:
    machine = report["machine_info"]
    cpu = machine.get("cpu", {}).get("brand_raw", machine.get("processor", "?"))
    lines = [
        f"Measured {report['datetime'][:16].replace('T', ' ')} UTC on {cpu} ({machine.get('machine', '')}), "
        f"Python {machine.get('python_version', '?')}; fp32 matmul peak {table[0]['peak']} GFLOP/s; "
        f"AMX for XNNPACK: {table[0]['amx']}.",
        "",
        "| benchmark | model | threads | median ms | size KB | agreement % | Dice | ΔV_rand | GFLOP/s | % peak |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in [row for row in table if table_of(row) == "variants"]:
        agree = f"{100 * r['agreement']:.2f}" if r["agreement"] is not None else ""
        dice = f"{r['dice']:.4f}" if r["dice"] is not None else ""
        diff = f"{r['v_rand_diff']:+.4f}" if r["v_rand_diff"] is not None else ""
        gflops = f"{r['gflops']:.1f}" if r["gflops"] else ""
        peak = f"{100 * r['gflops'] / r['peak']:.0f}" if r["gflops"] and r["peak"] else ""
        extra = ""
        if r["ms_per_slice"]:
            extra = f" ({r['ms_per_slice']:.1f} ms/slice)"
        if r["peak_rss_mb"]:
            extra = f" (peak {r['peak_rss_mb']:.0f} MB)"
        size = f"{r['size_kb']:.0f}" if r["size_kb"] else ""
        lines.append(f"| {r['name']}{extra} | {r['origin']} {r['variant']} | {r['threads']} | {r['median_ms']:.1f} | "
                     f"{size} | {agree} | {dice} | {diff} | {gflops} | {peak} |")
    if lines[-1].startswith("|---"):
        lines = lines[:2]
    return "\n".join(lines + big_sections(table) + block_agreement(table) + volumes(table) + watch(table)) + "\n"


def table_of(row: dict) -> str:
    """The one table a benchmark row belongs in, told apart by what its ``extra_info`` records."""
    info = row["info"]
    if "side" in info and "peak_rss_mb" in info:
        return "big_sections"
    if "block_agreement" in info:
        return "block_agreement"
    if "latency_median_ms" in info:
        return "watch"
    if "throughput_vs_segment" in info or row["variant"].endswith(", segment"):
        return "volumes"
    return "variants"


def volumes(table: list[dict]) -> list[str]:
    """`emseg-lite volume` against `emseg-lite segment` on the same stack."""
    rows_ = [r for r in table if table_of(r) == "volumes"]
    if not rows_:
        return []
    lines = ["", "| stack | run | megapixels/s (first block to last) | wall s | x segment (paired runs) | "
                 "worker warm-up s | peak RSS MB per worker |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows_:
        info = r["info"]
        ratio = f"{info['throughput_vs_segment']:.2f}" if "throughput_vs_segment" in info else "1 (reference)"
        lines.append(f"| {info['sections']} x {info['side']}² | {r['variant'].split(', ')[-1]} | "
                     f"{info['megapixels_per_s']:.1f} | {info['wall_s']} | {ratio} | "
                     f"{info.get('worker_warm_up_s', '')} | {info.get('peak_rss_mb_per_worker', '')} |")
    estimate = [r["info"] for r in rows_ if "hours_on_one_32_core_node" in r["info"]]
    if estimate:
        hours = estimate[0]["hours_on_one_32_core_node"]
        lines += ["", f"At the rate of each of two workers here, 10^4 sections of 20000 x 20000 px take {hours} h "
                      f"on one node of 32 cores (one worker per core), {hours / 10:.1f} h on 10 nodes and "
                      f"{60 * hours / 100:.0f} min on 100, if throughput scales with workers and storage keeps up."]
    return lines


def watch(table: list[dict]) -> list[str]:
    rows_ = [r for r in table if table_of(r) == "watch"]
    lines = []
    for r in rows_:
        info = r["info"]
        lines += ["", f"`emseg-lite watch` beside a simulated microscope ({info['sections']} sections of 1024 x 1024 "
                      f"px): settled-to-written latency median {info['latency_median_ms']:.0f} ms, max "
                      f"{info['latency_max_ms']:.0f} ms; `segment` of one such section {info['segment_ms']:.0f} ms "
                      f"(latency / segment time: {info['latency_to_segment']:.2f})."]
    return lines


def big_sections(table: list[dict]) -> list[str]:
    """`emseg-lite segment` on one big section: time, MP/s, peak memory, watershed / post none."""
    big = [r for r in table if table_of(r) == "big_sections"]
    if not big:
        return []
    lines = ["", "| section | post-processing | seconds (median) | megapixels/s | peak RSS MB | "
                 "time / post none (median of paired runs) |", "|---|---|---:|---:|---:|---:|"]
    for r in big:
        info = r["info"]
        ratio = f"{info['ratio_to_post_none']:.3f}" if "ratio_to_post_none" in info else ""
        lines.append(f"| {info['side']} x {info['side']} | {r['variant'].split('post ')[-1]} | "
                     f"{r['median_ms'] / 1000:.1f} | {info['megapixels_per_s']:.1f} | {info['peak_rss_mb']} | {ratio} |")
    return lines


def block_agreement(table: list[dict]) -> list[str]:
    """Block-wise masks against a whole-section pass, by watershed context."""
    rows_ = [r for r in table if table_of(r) == "block_agreement"]
    if not rows_:
        return []
    lines = ["", "| data (blocks) | context px | pixels equal to whole-section mask % | V_rand block-wise | "
                 "V_rand whole | post-processing s |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows_:
        info = r["info"]
        data = "ISBI 25-29 (144 px)" if "v_rand_whole" in info else "vnc 4096² mosaic (1504 px)"
        block_v = info.get("v_rand_blockwise", info.get("v_rand_vs_whole"))
        whole_v = f"{info['v_rand_whole']:.4f}" if "v_rand_whole" in info else "1 (reference)"
        lines.append(f"| {data} | {r['variant'].split('context ')[-1]} | {100 * info['block_agreement']:.4f} | "
                     f"{block_v:.4f} | {whole_v} | {r['median_ms'] / 1000:.2f} |")
    return lines


def plot(table: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [r for r in table if r["agreement"] is not None]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in points:
        ax.scatter(r["median_ms"], 100 * r["agreement"], s=40)
        ax.annotate(f"{r['origin']} {r['variant']} ({r['threads']}t)", (r["median_ms"], 100 * r["agreement"]),
                    fontsize=7, xytext=(4, 2), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("latency per 512 x 512 slice (ms, median, log scale)")
    ax.set_ylabel("pixel agreement with the full model (%)")
    ax.set_title("emseg-lite variants: latency vs agreement")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("json", type=Path)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--name", default="latest", help="Base name of the markdown file.")
    args = parser.parse_args()
    report = json.loads(args.json.read_text())
    table = rows(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.md").write_text(markdown(report, table))
    if any(r["agreement"] is not None for r in table):
        plot(table, args.out / "latency_vs_agreement.png")
    print((args.out / f"{args.name}.md").read_text())


if __name__ == "__main__":
    main()
