"""Query term pruning: quality and speed of searching only each query's heaviest terms.

    python -m benchmarks.bench_query_pruning --collection runs/scifact [--data ../shared/data/scifact]

The collection's own sparse model encodes the split's queries once; each setting prunes those vectors
(``indexer.csr.prune_terms``: at most N terms, or the fewest heaviest terms holding a share of the weight) and
searches the index one query at a time on one thread, ``--rounds`` times with the settings interleaved (the
machine is shared). Reported per setting: average terms kept, recall@10 against the unpruned search of the same
index (the approximation's own error), nDCG@10 on the qrels, and mean / p99 search latency with its ratio to the
unpruned row's (medians over rounds). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks.report import grid

SETTINGS: list[tuple[str, int | None, float | None]] = [
    ("full", None, None),
    ("max 32 terms", 32, None),
    ("max 16 terms", 16, None),
    ("max 8 terms", 8, None),
    ("max 4 terms", 4, None),
    ("mass 0.95", None, 0.95),
    ("mass 0.9", None, 0.9),
    ("mass 0.8", None, 0.8),
    ("mass 0.6", None, 0.6),
]


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collection", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/scifact"))
    ap.add_argument("--split", default="test")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/query-pruning-scifact.json"))
    a = ap.parse_args(argv)
    from eval import metrics
    from lsr import SparseEncoder
    from retrieval.corpus import find, read_qrels, read_queries
    from retrieval.searcher import Collection

    qrels = read_qrels(a.data / "qrels" / f"{a.split}.tsv")
    queries = {q: t for q, t in read_queries(find(a.data, "queries")).items() if q in qrels}
    qids = list(queries)
    col = Collection.open(a.collection)
    enc = SparseEncoder.from_pretrained(col.meta["job"]["sparse_model"])
    full = enc.encode_queries([queries[q] for q in qids])
    batches = {name: full.pruned(m, f) for name, m, f in SETTINGS}
    index = col.sparse
    index.search_batch(full.take([0]), k=a.k)  # warm-up
    times: dict[str, list[list[float]]] = {name: [] for name in batches}
    runs: dict[str, dict] = {}
    for _ in range(a.rounds):
        for name, batch in batches.items():
            per_query, run = [], {}
            for i, q in enumerate(qids):
                one = batch.take([i])
                t0 = time.perf_counter()
                res = index.search_batch(one, k=a.k, threads=1)
                per_query.append(time.perf_counter() - t0)
                run[q] = {h.doc_id: h.score for h in index.hits(res, 0)}
            times[name].append(per_query)
            runs[name] = run
    base_mean = statistics.median(float(np.mean(r)) for r in times["full"])
    rows = []
    for name, m, f in SETTINGS:
        mean = statistics.median(float(np.mean(r)) for r in times[name])
        p99 = statistics.median(float(np.percentile(r, 99)) for r in times[name])
        recall = float(np.mean([len(set(runs[name][q]) & set(runs["full"][q])) / max(1, len(runs["full"][q]))
                                for q in qids]))  # fmt: skip
        ndcg = metrics.evaluate(runs[name], qrels, ("nDCG@10",))["nDCG@10"]
        rows.append({"setting": name, "max_terms": m, "mass": f, "terms": batches[name].nnz / len(qids),
                     "recall@10_vs_full": recall, "nDCG@10": ndcg, "mean_ms": mean * 1000, "p99_ms": p99 * 1000,
                     "speedup": base_mean / mean})  # fmt: skip
    print(f"\n{a.collection} ({col.meta['job']['sparse_model']}), {len(qids)} {a.split} queries, k={a.k}, 1 thread, "
          f"median of {a.rounds} interleaved rounds")  # fmt: skip
    print(grid(["setting", "terms", "recall@10 vs full", "nDCG@10", "mean ms", "p99 ms", "x full"],
               [[r["setting"], f"{r['terms']:.1f}", f"{r['recall@10_vs_full']:.3f}", f"{r['nDCG@10']:.4f}",
                 f"{r['mean_ms']:.3f}", f"{r['p99_ms']:.3f}", f"{r['speedup']:.2f}"] for r in rows]))  # fmt: skip
    a.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"collection": str(a.collection), "model": col.meta["job"]["sparse_model"], "queries": len(qids),
            "split": a.split, "k": a.k, "rounds": a.rounds,
            "machine": platform.processor() or platform.machine()}  # fmt: skip
    a.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {a.out}")
    return rows


if __name__ == "__main__":
    main()
