"""Static (document-side) pruning: index size, speed and what it costs in quality.

    python -m benchmarks.bench_static_pruning --workload scifact debian

SPLADE-tiny vectors (``benchmarks.encoded``: scifact's corpus and test queries, debian-docs-en with the MS MARCO
dev-small queries). For each setting an index is built with ``IndexBuilder(doc_max_terms=, doc_mass=)`` (each
document keeps its heaviest terms: at most N, or the fewest holding a share of its weight; ``prune_rows``) and
every query is searched one at a time on one thread, ``--rounds`` times with the settings interleaved. Reported:
postings kept, index bytes, build seconds, recall@10 and @1000 against the unpruned index (the approximation's own
error), nDCG@10 on scifact's qrels, and mean / p99 latency at k=10 with its ratio to the unpruned row's (medians
over rounds). Prints a table per workload and writes JSON.
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

from benchmarks.bench_index import SHARED, VOCAB, qrels_ids, subset
from benchmarks.encoded import load
from benchmarks.report import grid
from indexer import Index, IndexBuilder, SparseBatch

SETTINGS: list[tuple[str, int | None, float | None]] = [
    ("full", None, None),
    ("max 128 terms", 128, None),
    ("max 64 terms", 64, None),
    ("max 32 terms", 32, None),
    ("mass 0.9", None, 0.9),
    ("mass 0.8", None, 0.8),
    ("mass 0.7", None, 0.7),
]


def workload(name: str, enc: Path, nq: int) -> tuple[list[str], SparseBatch, list[str], SparseBatch]:
    if name == "scifact":
        doc_ids, docs = load(enc, "scifact-docs")
        qids, queries = subset(*load(enc, "scifact-queries"), qrels_ids(SHARED / "scifact/qrels/test.tsv"), nq)
        return doc_ids, docs, qids, queries
    qrels = SHARED / "queries-qrels-only/msmarco-passage/qrels/dev-small.tsv"
    qids, queries = subset(*load(enc, "msmarco-queries"), qrels_ids(qrels), nq)
    return *load(enc, "debian-docs"), qids, queries


def build(path: Path, ids: list[str], docs: SparseBatch, max_terms: int | None, mass: float | None) -> float:
    t0 = time.perf_counter()
    with IndexBuilder(path, vocab_size=VOCAB, doc_max_terms=max_terms, doc_mass=mass) as b:
        for lo in range(0, docs.num_rows, 100_000):
            hi = min(lo + 100_000, docs.num_rows)
            a, z = int(docs.indptr[lo]), int(docs.indptr[hi])
            b.add(ids[lo:hi], SparseBatch(docs.indptr[lo : hi + 1] - docs.indptr[lo], docs.indices[a:z],
                                          docs.values[a:z]))  # fmt: skip
    return time.perf_counter() - t0


def run(name: str, enc: Path, nq: int, rounds: int) -> dict:
    from eval import metrics
    from retrieval.corpus import read_qrels

    doc_ids, docs, qids, queries = workload(name, enc, nq)
    tmp = Path(tempfile.mkdtemp(prefix="static-pruning-"))
    singles = [SparseBatch(np.array([0, len(t)], np.uint64), t, v) for t, v in (queries.row(i) for i in
                                                                                range(queries.num_rows))]  # fmt: skip
    rows, indexes = [], {}
    for label, max_terms, mass in SETTINGS:
        build_s = build(tmp / label.replace(" ", "-"), doc_ids, docs, max_terms, mass)
        ix = Index.open(tmp / label.replace(" ", "-"))
        indexes[label] = ix
        rows.append({"setting": label, "postings": ix.num_postings, "bytes": ix.postings_bytes, "build_s": build_s})
    got = {label: {k: ix.search_batch(queries, k=k, threads=2) for k in (10, 1000)} for label, ix in indexes.items()}
    qrels = read_qrels(SHARED / "scifact/qrels/test.tsv") if name == "scifact" else None
    lat: dict[str, list[tuple[float, float]]] = {label: [] for label in indexes}
    for _ in range(rounds):
        for label, ix in indexes.items():
            ts = []
            for q in singles:
                t0 = time.perf_counter_ns()
                ix.search_batch(q, k=10, threads=1)
                ts.append((time.perf_counter_ns() - t0) / 1e6)
            lat[label].append((float(np.mean(ts)), float(np.percentile(ts, 99))))
    full = got["full"]
    for r in rows:
        label = r["setting"]
        for k in (10, 1000):
            a, b = got[label][k], full[k]
            rec = [len(set(a.docs[i, : a.counts[i]]) & set(b.docs[i, : b.counts[i]])) / max(1, int(b.counts[i]))
                   for i in range(queries.num_rows) if b.counts[i]]  # fmt: skip
            r[f"recall@{k}"] = float(np.mean(rec))
        if qrels is not None:
            ix, res = indexes[label], got[label][10]
            run_ = {qids[i]: {h.doc_id: h.score for h in ix.hits(res, i)} for i in range(queries.num_rows)}
            r["nDCG@10"] = metrics.evaluate(run_, qrels, ("nDCG@10",))["nDCG@10"]
        r["mean_ms"] = statistics.median(m for m, _ in lat[label])
        r["p99_ms"] = statistics.median(p for _, p in lat[label])
        r["postings_kept"] = r["postings"] / rows[0]["postings"]
        r["bytes_per_doc"] = r["bytes"] / docs.num_rows
    for r in rows:
        r["speedup"] = rows[0]["mean_ms"] / r["mean_ms"]
    return {"workload": name, "docs": docs.num_rows, "queries": queries.num_rows, "rows": rows}


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", nargs="+", default=["scifact"], choices=["scifact", "debian"])
    ap.add_argument("--encoded", type=Path, default=Path(".cache/encoded"))
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/static-pruning.json"))
    args = ap.parse_args(argv)
    results = []
    for name in args.workload:
        res = run(name, args.encoded, args.queries, args.rounds)
        results.append(res)
        cols = ["setting", "postings_kept", "bytes_per_doc", "build_s", "recall@10", "recall@1000", "nDCG@10",
                "mean_ms", "p99_ms", "speedup"]  # fmt: skip
        print(f"\n### {name}: {res['docs']:,} docs, {res['queries']} queries, SPLADE-tiny, one thread, k=10\n")
        fmt = {"postings_kept": "{:.3f}", "bytes_per_doc": "{:.0f}", "build_s": "{:.1f}", "recall@10": "{:.4f}",
               "recall@1000": "{:.4f}", "nDCG@10": "{:.4f}", "mean_ms": "{:.3f}", "p99_ms": "{:.3f}",
               "speedup": "{:.2f}x"}  # fmt: skip
        print(grid(cols, [[fmt[c].format(r[c]) if c in fmt and c in r else r.get(c, "—") for c in cols]
                          for r in res["rows"]]))  # fmt: skip
    meta = {"machine": platform.processor() or platform.machine(), "cpus": __import__("os").cpu_count()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
