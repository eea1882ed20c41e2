"""Markdown tables from bench_index JSON files (several runs of one workload are merged by engine).

python -m benchmarks.report bench-out/index-scifact-debian.json bench-out/index-synth1m.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ORDER = ["ours", "scipy", "pisa", "bmp", "pyserini", "seismic"]


def fmt(x: float | None, nd: int) -> str:
    return "—" if x is None or x != x else f"{x:.{nd}f}"


def grid(headers: list[str], rows: list[list]) -> str:
    """A plain Markdown table."""
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def table(results: list[dict]) -> str:
    rows = [
        "| engine | build s | B/posting | p50@10 ms | p99@10 ms | CPU@10 ms | p50@1000 ms | p99@1000 ms "
        "| 2-thread QPS@10 | R@10 | R@1000 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    results = sorted(results, key=lambda r: ORDER.index(r["engine"]) if r["engine"] in ORDER else 99)
    for r in results:
        lat, rec = r["lat"], r["recall"]
        rows.append(
            f"| {r['engine']} | {fmt(r['build_s'], 1)} | {fmt(r['bytes_per_posting'], 2)} "
            f"| {fmt(lat.get('p50@10'), 3)} | {fmt(lat.get('p99@10'), 3)} | {fmt(lat.get('cpu@10'), 3)} "
            f"| {fmt(lat.get('p50@1000'), 3)} | {fmt(lat.get('p99@1000'), 3)} | {fmt(r['qps_2t'], 0)} "
            f"| {fmt(rec.get('R@10'), 4)} | {fmt(rec.get('R@1000'), 4)} |"
        )
    by = {r["engine"]: r for r in results}
    peers = [by[e] for e in ("bmp", "pisa") if e in by and "p50@10" in by[e]["lat"]]
    if "ours" in by and peers:
        notes = []
        for k in (10, 1000):
            best = min(peers, key=lambda r: r["lat"][f"p50@{k}"])
            ratio = best["lat"][f"p50@{k}"] / by["ours"]["lat"][f"p50@{k}"]
            notes.append(f"k={k}: {ratio:.2f}x ({best['engine']})")
        rows.append("\nOurs against the fastest exact peer, single-thread p50: " + "; ".join(notes) + ".")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path)
    args = ap.parse_args()
    merged: dict[str, dict[str, dict]] = {}
    for f in args.files:
        for run in json.loads(f.read_text()):
            engines = merged.setdefault(run["info"]["workload"], {})
            for r in run["results"]:
                if r["engine"] not in engines or "p50@10" in r["lat"]:
                    engines[r["engine"]] = r
    for workload, engines in merged.items():
        print(f"\n### {workload}\n")
        print(table(list(engines.values())))


if __name__ == "__main__":
    main()
