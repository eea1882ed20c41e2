"""Sharded live indexes (retrieval.live) against one live index: search latency, write throughput, agreement.

    python -m benchmarks.bench_live_sharded --workload debian --shards 2 4 [--ray] [--queries 500]

The documents (SPLADE-tiny vectors, ``benchmarks.encoded``; synth1m as in ``bench_index``) are written into one
live index and into sharded ones (``ShardedLiveIndex``, documents routed by BLAKE2b-64 of their id, one fixed
impact scale), in upserts of ``--batch`` documents, then merged to one segment per shard. Each query is searched
alone, k = 10, through the index's ``search_sparse_batch`` (what the engine calls): one live index on one thread;
a sharded one with every shard searched in parallel and the hits merged; with ``--ray`` also with each shard on a
Ray actor of a local Ray (``retrieval.live.ray_shards``: the writes, merges and searches cross processes).
Reported: write throughput (documents a second, the upserts alone), mean / p50 / p99 ms a query, the time against
one live index, and agreement (the same scores; documents compared outside ties at the 10th score). Prints a
table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_index import VOCAB, load_workload
from benchmarks.bench_sharded import one_query
from benchmarks.report import grid
from indexer import SparseBatch
from retrieval.live import IndexSpec, LiveIndex, ShardedLiveIndex


def write(index, ids: list[str], docs: SparseBatch, batch: int) -> float:  # noqa: ANN001
    """Upsert every document in batches; documents a second."""
    t0 = time.perf_counter()
    for lo in range(0, len(ids), batch):
        hi = min(lo + batch, len(ids))
        index.upsert(ids[lo:hi], docs.take(range(lo, hi)))
    return len(ids) / (time.perf_counter() - t0)


def compact(index) -> None:  # noqa: ANN001
    shards = index.shards if isinstance(index, ShardedLiveIndex) else [index]
    for shard in shards:
        while shard.merge(max_segments=1, count=64):
            pass


def same(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> bool:
    if [s for _, s in got] != [s for _, s in want]:
        return False
    kth = want[-1][1] if want else 0.0
    return {d for d, s in got if s > kth} == {d for d, s in want if s > kth}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", default="debian", choices=["scifact", "debian", "synth1m"])
    p.add_argument("--shards", type=int, nargs="+", default=[2, 4])
    p.add_argument("--ray", action="store_true", help="also with each shard on a Ray actor (a local Ray)")
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--batch", type=int, default=5000, help="documents an upsert")
    p.add_argument("--synth-docs", type=int, default=1_000_000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--encoded", type=Path, default=Path(".cache/encoded"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/live-sharded.json"))
    a = p.parse_args(argv)
    w = load_workload(a.workload, a.encoded, a.queries, a.synth_docs)
    top = float(np.max(w.docs.values))
    spec = IndexSpec("bench", VOCAB, "sha256:bench", max_weight=top)
    qs = [one_query(w.queries, i) for i in range(w.queries.num_rows)]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        configs = [("one live index", 1, "local")]
        configs += [(f"{n} shards, in process", n, "local") for n in a.shards]
        if a.ray:
            import ray

            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
            configs += [(f"{n} shards, Ray actors", n, "ray") for n in a.shards]
        truth = None
        for label, n, where in configs:
            folder = Path(tmp) / label.replace(" ", "_").replace(",", "")
            index = LiveIndex.create(folder, spec) if n == 1 else ShardedLiveIndex.create(folder, spec, n)
            if where == "ray":  # written, merged and searched through the shards' actors
                from retrieval.live.ray_shards import open_sharded

                index.close()
                index = open_sharded(folder, cpus_per_shard=0.1)
            docs_per_s = write(index, w.doc_ids, w.docs, a.batch)
            compact(index)
            lat, got = [], []
            for q in qs:
                t0 = time.perf_counter()
                got.append(index.search_sparse_batch(q, a.k)[0][0])
                lat.append((time.perf_counter() - t0) * 1000)
            truth = truth or got
            agree = all(same(g, t) for g, t in zip(got, truth))
            index.close()
            results.append({"config": label, "shards": n, "where": where, "write_docs_per_s": docs_per_s,
                            "mean_ms": statistics.fmean(lat), "p50_ms": float(np.percentile(lat, 50)),
                            "p99_ms": float(np.percentile(lat, 99)), "agrees": agree})  # fmt: skip
    base = results[0]["mean_ms"]
    rows = []
    for r in results:
        r["vs_one"] = r["mean_ms"] / base
        rows.append([r["config"], f"{r['write_docs_per_s']:,.0f}", f"{r['mean_ms']:.3f}", f"{r['p50_ms']:.3f}",
                     f"{r['p99_ms']:.3f}", f"{r['vs_one']:.2f}x", "yes" if r["agrees"] else "NO"])  # fmt: skip
    print(f"\n{a.workload}: {len(w.doc_ids):,} documents, {len(qs)} queries, k = {a.k}, one query at a time")  # noqa: T201
    print(grid(["config", "writes (docs/s)", "mean ms", "p50 ms", "p99 ms", "time vs one", "same results"], rows))  # noqa: T201
    report = {"machine": platform.machine(), "cores": os.cpu_count(), "workload": a.workload, "k": a.k,
              "documents": len(w.doc_ids), "queries": len(qs), "batch": a.batch, "results": results}  # fmt: skip
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
