"""Safe block-max pruning against exhaustive search on the same index: the same hits, less work.

    python -m benchmarks.bench_pruning --workload scifact debian synth1m [--block-docs 16 64 256] [--k 10 1000]

Builds our index over each workload's SPLADE-tiny vectors (``benchmarks.bench_index.load_workload``; encode them
first with ``benchmarks.encoded``), then searches every query one at a time on one thread with each setting,
``--rounds`` times with the settings interleaved (the machine is shared). Per setting and k: mean, p50 and p99
latency (each the median over rounds), postings decoded per query, the speed-up over exhaustive search from the
same run, and whether every query's hits (documents and scores) equal exhaustive search's. The derived structures
of each setting (doc-block maxima; block_forward's forward index too) are built before timing, by a first search
whose time is reported (``prepare_s``). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_index import build_ours, load_workload
from benchmarks.report import grid
from indexer import Index, SparseBatch
from indexer.index import AUTO_BLOCK_DOCS


def run(index: Index, queries: list[SparseBatch], k: int, algorithm: str, block_docs: int) -> dict:
    times, docs, scores, postings = [], [], [], []
    for q in queries:
        t0 = time.perf_counter()
        res = index.search_batch(q, k=k, threads=1, algorithm=algorithm, block_docs=block_docs)
        times.append(time.perf_counter() - t0)
        docs.append(res.docs[0])
        scores.append(res.scores[0])
        postings.append(int(res.postings[0]))
    return {"times": times, "docs": np.stack(docs), "scores": np.stack(scores), "postings": postings}


def bench(name: str, args: argparse.Namespace) -> list[dict]:
    w = load_workload(name, args.encoded, args.queries, args.synth_docs)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        index = build_ours(w, Path(tmp) / "ix")
        build_s = time.perf_counter() - t0
        queries = [w.queries.take([i]) for i in range(w.queries.num_rows)]
        settings = [("exhaustive", 0)] + [
            (a, b) for a in args.algorithms if a != "auto" for b in args.block_docs if a != "block_forward" or b <= 256
        ]
        if "auto" in args.algorithms:
            settings.append(("auto", AUTO_BLOCK_DOCS))
        prep = {}
        for s in settings[1:]:  # derived structures (block maxima, then the forward index) built before timing
            t0 = time.perf_counter()
            index.search_batch(queries[0], k=1, threads=1, algorithm=s[0], block_docs=s[1])
            prep[s] = time.perf_counter() - t0
        for k in args.k:
            results: dict[tuple[str, int], list[dict]] = {s: [] for s in settings}
            for _ in range(args.rounds):
                for s in settings:
                    results[s].append(run(index, queries, k, s[0], s[1] or 64))
            base = results[settings[0]]
            base_mean = statistics.median(float(np.mean(r["times"])) for r in base)
            for (algorithm, b), rs in results.items():
                mean = statistics.median(float(np.mean(r["times"])) for r in rs)
                same = all(
                    np.array_equal(r["docs"], base[0]["docs"]) and np.array_equal(r["scores"], base[0]["scores"])
                    for r in rs
                )
                rows.append({
                    "workload": name, "docs": w.docs.num_rows, "queries": len(queries), "k": k,
                    "algorithm": algorithm, "block_docs": b or None, "index_build_s": build_s,
                    "prepare_s": prep.get((algorithm, b)), "mean_ms": mean * 1e3,
                    "p50_ms": statistics.median(float(np.percentile(r["times"], 50)) for r in rs) * 1e3,
                    "p99_ms": statistics.median(float(np.percentile(r["times"], 99)) for r in rs) * 1e3,
                    "postings_per_query": float(np.mean(rs[0]["postings"])), "speedup": base_mean / mean,
                    "same_hits_as_exhaustive": bool(same),
                })  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", nargs="+", default=["scifact"], choices=["scifact", "debian", "synth1m", "smollm2"])
    ap.add_argument(
        "--algorithms", nargs="+", default=["block_max", "block_forward", "auto"],
        choices=["block_max", "block_forward", "auto"], help="beside exhaustive; auto has its own block size",
    )  # fmt: skip
    ap.add_argument("--block-docs", nargs="+", type=int, default=[8, 16, 32])
    ap.add_argument("--k", nargs="+", type=int, default=[10, 1000])
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--encoded", type=Path, default=Path(".cache/encoded"))
    ap.add_argument("--synth-docs", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/pruning.json"))
    args = ap.parse_args(argv)
    rows = [r for name in args.workload for r in bench(name, args)]
    head = ["workload", "k", "algorithm", "block docs", "mean ms", "p50 ms", "p99 ms", "postings / query",
            "speed-up", "same hits"]  # fmt: skip
    body = [[r["workload"], r["k"], r["algorithm"], r["block_docs"] or "—", f"{r['mean_ms']:.3f}",
             f"{r['p50_ms']:.3f}", f"{r['p99_ms']:.3f}", f"{r['postings_per_query']:,.0f}", f"{r['speedup']:.2f}x",
             "yes" if r["same_hits_as_exhaustive"] else "NO"] for r in rows]  # fmt: skip
    print(grid(head, body))
    meta = {"machine": platform.machine(), "cpus": __import__("os").cpu_count(), "threads": 1, "rounds": args.rounds}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
