"""Query-encoding cost: the model's query encoder beside inference-free queries (a token-weight lookup).

    python -m benchmarks.bench_query_encode [--models splade-tiny-distil,splade-tiny-distil-if] [--rounds 5]

BEIR scifact's test queries (300), each encoder timed one query at a time (a search service's case) and as one
batch, in interleaved rounds (round 1 of every model, then round 2, ...: the machine is shared and drifts); the
median round is reported, with the first model's time over each model's (the speed-up) from the same rounds.
Prints a table and writes JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from benchmarks.report import grid


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/scifact"))
    ap.add_argument("--models", default="splade-tiny-distil,splade-tiny-distil-if")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/query-encode-cpu.json"))
    a = ap.parse_args(argv)
    import torch

    from lsr import SparseEncoder
    from retrieval.corpus import find, read_qrels, read_queries

    qrels = read_qrels(a.data / "qrels" / "test.tsv")
    queries = read_queries(find(a.data, "queries"))
    texts = [queries[q] for q in qrels if q in queries]
    models = {m: SparseEncoder.from_pretrained(m) for m in a.models.split(",")}
    for enc in models.values():  # warm-up
        enc.encode_queries(texts[:16])
    single: dict[str, list[float]] = {m: [] for m in models}
    batch: dict[str, list[float]] = {m: [] for m in models}
    for _ in range(a.rounds):
        for m, enc in models.items():
            t0 = time.perf_counter()
            for t in texts:
                enc.encode_queries([t])
            single[m].append((time.perf_counter() - t0) / len(texts) * 1e6)
            t0 = time.perf_counter()
            enc.encode_queries(texts)
            batch[m].append((time.perf_counter() - t0) / len(texts) * 1e6)
        nnz = {m: enc.encode_queries(texts).nnz / len(texts) for m, enc in models.items()}
    first = next(iter(models))
    rows = []
    for m in models:
        speedup = statistics.median(f / s for f, s in zip(single[first], single[m]))
        rows.append({"model": m, "us_per_query_single": statistics.median(single[m]),
                     "us_per_query_batched": statistics.median(batch[m]), "speedup_single": speedup,
                     "query_nnz": nnz[m], "queries": len(texts), "threads": torch.get_num_threads()})  # fmt: skip
    print(grid(["model", "µs/query (one at a time)", "µs/query (batch)", f"× vs {first}", "query nnz"],  # noqa: T201
               [[r["model"], f"{r['us_per_query_single']:.0f}", f"{r['us_per_query_batched']:.0f}",
                 f"{r['speedup_single']:.1f}", f"{r['query_nnz']:.1f}"] for r in rows]))  # fmt: skip
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(rows, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
