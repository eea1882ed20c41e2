"""Batch search against one query at a time, in the service's engine (no HTTP), on scifact's test queries.

    python -m benchmarks.bench_batch --collection runs/scifact [--rounds 5] [--threads 1,2]

The engine imports the collection as a live index (as ``python -m service import`` does). Rows, each over the
300 test queries, interleaved over ``--rounds`` (the machine is shared; medians reported):
- loop          ``Engine.search`` once per query: what /search/batch did before it had a batch path
- batch         ``Engine.search_batch``: texts encoded in one call, one native search per segment
- batch, N thr  the same with the native search on N threads
for text queries (the server encodes them) and pre-encoded ones (sparse vectors given). Hits are checked equal
between loop and batch. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.report import grid


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collection", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/scifact"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", default="2")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/batch-scifact.json"))
    a = ap.parse_args(argv)
    from retrieval.corpus import find, read_qrels, read_queries
    from retrieval.encoders import Encoders
    from retrieval.engine import Engine
    from retrieval.query import Query

    qrels = read_qrels(a.data / "qrels" / "test.tsv")
    texts = [t for q, t in read_queries(find(a.data, "queries")).items() if q in qrels]
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(Path(tmp), Encoders())
        engine.import_collection("sci", a.collection)
        sparse, _ = engine.models("sci")
        enc = sparse.encode_queries(texts)
        given = [Query(indices=enc.row(i)[0], values=enc.row(i)[1]) for i in range(len(texts))]
        kinds = {"text": [Query(text=t) for t in texts], "pre-encoded": given}
        engine.search_batch("sci", kinds["text"][:16], k=a.k)  # warm-up
        runs = {}
        for kind, queries in kinds.items():
            runs[(kind, "loop")] = lambda q=queries: [engine.search("sci", x, k=a.k) for x in q]
            runs[(kind, "batch")] = lambda q=queries: engine.search_batch("sci", q, k=a.k)
            for t in (int(x) for x in a.threads.split(",") if x):
                runs[(kind, f"batch, {t} thr")] = lambda q=queries, t=t: engine.search_batch("sci", q, k=a.k, threads=t)
        seconds: dict = {key: [] for key in runs}
        hits: dict = {}
        for _ in range(a.rounds):
            for key, fn in runs.items():
                t0 = time.perf_counter()
                res = fn()
                seconds[key].append(time.perf_counter() - t0)
                hits[key] = [[d for d, _ in r.hits] for r in res]
        engine.close()
    rows = []
    for (kind, row), secs in seconds.items():
        loop = seconds[(kind, "loop")]
        same = hits[(kind, row)] == hits[(kind, "loop")]
        rows.append({"queries": kind, "row": row, "qps": len(texts) / statistics.median(secs),
                     "speedup": statistics.median(x / y for x, y in zip(loop, secs)), "same_hits": same,
                     "n": len(texts), "rounds": a.rounds})  # fmt: skip
    print(
        grid(
            ["queries", "row", "queries/s", "× loop", "same hits"],  # noqa: T201
            [[r["queries"], r["row"], f"{r['qps']:.0f}", f"{r['speedup']:.2f}", r["same_hits"]] for r in rows],
        )
    )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(rows, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
