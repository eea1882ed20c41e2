"""Filtered search on a live index: what a metadata filter costs beside the search it restricts.

    python -m benchmarks.bench_filter [--docs 50000] [--queries 200] [--model splade-tiny-distil]

Documents: the first ``--docs`` passages of a random sample of ../shared/corpora/debian-docs-en (seeded), encoded
once with ``--model`` (cached in ``--cache``) and upserted into a live index in batches of 5,000 (several segments),
each with its corpus metadata plus ``bucket`` (a number 0..99 from a hash of the id). Queries: passage titles from
the rest of the corpus. Rows: no filter, and ``bucket < N`` for 1, 10 and 50 % selectivity, plus an equality
filter on ``source``. Columns: building the filter's masks (every segment; the metadata columns are built once,
before timing, as a running service has them), the whole filtered search, and the unfiltered search, per query,
medians over interleaved rounds; hits are checked to satisfy the filter. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.report import grid


def _sample(corpus: Path, docs: int, queries: int, seed: int) -> tuple[list[dict], list[str]]:
    with gzip.open(corpus, "rt", encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    order = np.random.default_rng(seed).permutation(len(records))
    chosen = [records[i] for i in order[:docs]]
    titles = [records[i]["title"] for i in order[docs : docs + queries]]
    return chosen, titles


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=Path("../shared/corpora/debian-docs-en/corpus.jsonl.gz"))
    ap.add_argument("--docs", type=int, default=50_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--model", default="splade-tiny-distil")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--cache", type=Path, default=Path("runs/bench-filter"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/filter-debian.json"))
    a = ap.parse_args(argv)
    from indexer import SparseBatch
    from lsr import SparseEncoder
    from retrieval.filters import matches, parse
    from retrieval.live import IndexSpec, LiveIndex
    from retrieval.vectors import read_vectors, write_vectors

    records, titles = _sample(a.corpus, a.docs, a.queries, seed=0)
    enc = SparseEncoder.from_pretrained(a.model)
    cached = a.cache / f"{a.model}-{a.docs}.safetensors"
    if not cached.is_file():
        texts = [f"{r['title']} {r['text']}" for r in records]
        write_vectors(
            cached, enc.encode_documents(texts, batch_size=64, show_progress=True), ids=[r["_id"] for r in records]
        )
    ids, vectors, _ = read_vectors(cached)
    assert ids == [r["_id"] for r in records], "the cache was made from another sample"
    metadata = []
    for r in records:
        m = dict(r.get("metadata") or {})
        m["bucket"] = int(hashlib.sha256(r["_id"].encode()).hexdigest()[:8], 16) % 100
        metadata.append(m)
    queries = enc.encode_queries(titles)
    filters = {
        "none": None,
        "bucket < 1 (1 %)": {"field": "bucket", "lt": 1},
        "bucket < 10 (10 %)": {"field": "bucket", "lt": 10},
        "bucket < 50 (50 %)": {"field": "bucket", "lt": 50},
        "source = " + records[0]["metadata"]["source"]: {"field": "source", "eq": records[0]["metadata"]["source"]},
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        index = LiveIndex.create(Path(tmp) / "idx", IndexSpec(a.model, enc.vocab_size, enc.vocab_hash))
        for lo in range(0, len(ids), 5000):
            part = vectors.take(range(lo, min(lo + 5000, len(ids))))
            index.upsert(ids[lo : lo + 5000], SparseBatch(*part), metadata=metadata[lo : lo + 5000])
        nodes = {name: None if raw is None else parse(raw) for name, raw in filters.items()}
        for node in nodes.values():  # the segments' metadata columns, as a running service holds them
            if node is not None:
                index.search_sparse_batch(queries.take([0]), a.k, filter=node)
        mask_s = {name: [] for name in nodes}
        search_s = {name: [] for name in nodes}
        hits = {}
        for _ in range(a.rounds):
            for name, node in nodes.items():
                t0 = time.perf_counter()
                if node is not None:
                    for seg in index.segments:
                        index._allowed(seg, node)
                mask_s[name].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                hits[name] = [index.search_sparse_batch(queries.take([i]), a.k, filter=node)[0][0]
                              for i in range(queries.num_rows)]  # fmt: skip
                search_s[name].append((time.perf_counter() - t0) / queries.num_rows)
        by_id = dict(zip(ids, metadata))
        for name, node in nodes.items():
            passing = sum(matches(node, m) for m in metadata) if node is not None else len(metadata)
            ok = node is None or all(matches(node, by_id[d]) for h in hits[name] for d, _ in h)
            rows.append({"filter": name, "selectivity": passing / len(metadata),
                         "mask_ms": 1000 * statistics.median(mask_s[name]),
                         "search_ms_per_query": 1000 * statistics.median(search_s[name]), "hits_match": ok,
                         "segments": len(index.segments), "docs": len(ids), "queries": queries.num_rows})  # fmt: skip
        index.close()
    print(grid(["filter", "selectivity", "masks ms (all segments)", "search ms / query", "hits match"],  # noqa: T201
               [[r["filter"], f"{r['selectivity']:.3f}", f"{r['mask_ms']:.3f}", f"{r['search_ms_per_query']:.3f}",
                 r["hits_match"]] for r in rows]))  # fmt: skip
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(rows, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
