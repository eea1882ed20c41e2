"""Sharded search (retrieval.sharded) against the single index: latency, throughput and agreement.

    python -m benchmarks.bench_sharded --workload debian synth1m --shards 1 2 4 [--queries 500]

For each workload (SPLADE-tiny vectors, ``benchmarks.encoded``; synth1m as in ``bench_index``) the single index is
built with ``build_index`` and the sharded ones with ``build_shards`` (documents routed by BLAKE2b-64 of their id,
one impact scale for all shards). Each query is searched alone, k = 10: on the single index with one thread, and
on the sharded index with one thread per shard (the in-process coordinator: every shard searched, the hits merged
by score). Reported per configuration: mean, p50 and p99 latency (ms), queries per second one at a time, the
coordinator's cost against the single index, and agreement (the merged top 10 has the single index's scores;
documents compared outside ties at the 10th score). The shards of one process share this machine's cores, so the
numbers say what the merge costs and what splitting saves when the shards run in parallel; a cluster adds the
network between coordinator and shards. Prints a table per workload and writes JSON.
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
from benchmarks.report import grid
from indexer import Index, SparseBatch, build_index
from retrieval.sharded import ShardedIndex, build_shards


def chunks(ids: list[str], docs: SparseBatch, size: int = 100_000):  # noqa: ANN201
    def batches():  # noqa: ANN202
        for lo in range(0, docs.num_rows, size):
            hi = min(lo + size, docs.num_rows)
            a, z = int(docs.indptr[lo]), int(docs.indptr[hi])
            yield ids[lo:hi], SparseBatch(docs.indptr[lo : hi + 1] - docs.indptr[lo], docs.indices[a:z],
                                          docs.values[a:z])  # fmt: skip

    return batches


def same(got: list, want: list) -> bool:
    """The same scores, and the same documents outside those tied with the k-th score."""
    if [h.score for h in got] != [h.score for h in want]:
        return False
    kth = want[-1].score if want else 0.0
    return {h.doc_id for h in got if h.score > kth} == {h.doc_id for h in want if h.score > kth}


def one_query(queries: SparseBatch, i: int) -> SparseBatch:
    t, w = queries.row(i)
    return SparseBatch(np.array([0, len(t)], dtype=np.uint64), t, w)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", nargs="+", default=["debian"], choices=["scifact", "debian", "synth1m"])
    p.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--synth-docs", type=int, default=1_000_000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--encoded", type=Path, default=Path(".cache/encoded"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/sharded.json"))
    a = p.parse_args(argv)
    report = {"machine": platform.machine(), "cores": os.cpu_count(), "k": a.k, "workloads": {}}
    for name in a.workload:
        w = load_workload(name, a.encoded, a.queries, a.synth_docs)
        rows, results = [], []
        with tempfile.TemporaryDirectory() as tmp:
            build_index(Path(tmp) / "single", chunks(w.doc_ids, w.docs), vocab_size=VOCAB)
            single = Index.open(Path(tmp) / "single")
            qs = [one_query(w.queries, i) for i in range(w.queries.num_rows)]
            truth = [single.hits(single.search_batch(q, k=a.k, threads=1), 0) for q in qs]
            configs: list[tuple[str, int, object]] = [("single index", 1, single)]
            for n in a.shards:
                t0 = time.perf_counter()
                build_shards(Path(tmp) / f"s{n}", chunks(w.doc_ids, w.docs), n, vocab_size=VOCAB)
                configs.append((f"{n} shards", n, (ShardedIndex.open(Path(tmp) / f"s{n}"), time.perf_counter() - t0)))
            for label, n, obj in configs:
                lat = []
                agree = True
                for q, want in zip(qs, truth):
                    t0 = time.perf_counter()
                    if label == "single index":
                        got = obj.hits(obj.search_batch(q, k=a.k, threads=1), 0)  # type: ignore[union-attr]
                    else:
                        got = obj[0].search_batch(q, k=a.k)[0]  # type: ignore[index]
                    lat.append((time.perf_counter() - t0) * 1000)
                    agree = agree and same(got, want)
                mean, p50, p99 = statistics.fmean(lat), float(np.percentile(lat, 50)), float(np.percentile(lat, 99))
                results.append({"config": label, "shards": n, "mean_ms": mean, "p50_ms": p50, "p99_ms": p99,
                                "qps": 1000 / mean, "agrees": agree,
                                "build_s": None if label == "single index" else obj[1]})  # type: ignore[index]  # fmt: skip
        base = results[0]["mean_ms"]
        for r in results:
            r["vs_single"] = r["mean_ms"] / base
            rows.append([r["config"], f"{r['mean_ms']:.3f}", f"{r['p50_ms']:.3f}", f"{r['p99_ms']:.3f}",
                         f"{r['qps']:.0f}", f"{r['vs_single']:.2f}x", "yes" if r["agrees"] else "NO"])  # fmt: skip
        print(f"\n{name}: {len(w.doc_ids):,} documents, {len(qs)} queries, k = {a.k}, one query at a time")  # noqa: T201
        print(grid(["config", "mean ms", "p50 ms", "p99 ms", "queries/s", "time vs single", "same results"],  # noqa: T201
                   rows))  # fmt: skip
        report["workloads"][name] = {"documents": len(w.doc_ids), "queries": len(qs), "results": results}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
