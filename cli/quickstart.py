"""The main job, end to end on the embedded defaults: index BEIR scifact with SPLADE-tiny (sparse,
our index) and all-MiniLM-L6-v2 (dense, faiss) into a collection, then answer sample searches in
hybrid mode (DBSF fusion, weights tuned on scifact's train split: eval/expected/scifact.json).

    python -m cli.quickstart [--data ../shared/data/scifact] [--collection runs/scifact]
                              [--query "..."] [--mode hybrid|sparse|dense] [--rebuild]
                              [--model smollm2-splade-if --device cuda]     (the LLM encoder trained here, on a GPU)

Without scifact in --data it downloads BEIR's official scifact.zip once into runs/data
(--beir-url names a mirror); with neither it stops with one clear line.

The same steps as ``lsr index`` + ``lsr search``; a rerun reuses the built collection.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from eval.datasets import BEIR_URL, DatasetUnavailableError, beir_dataset
from retrieval.collection import COLLECTION
from retrieval.corpus import find, read_queries, read_texts
from retrieval.fusion import Fusion
from retrieval.searcher import Collection, Searcher

from .app import DEFAULT_SPARSE, build_collection

logger = logging.getLogger(__name__)
EXPECTED = Path(__file__).resolve().parents[1] / "eval" / "expected" / "scifact.json"  # the tuned fusion


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data", type=Path, default=Path("../shared/data/scifact"), help="BEIR folder (from the repo root)"
    )
    ap.add_argument("--collection", type=Path, default=Path("runs/scifact"))
    ap.add_argument("--model", default=DEFAULT_SPARSE, help="sparse encoder (alias or folder)")
    ap.add_argument("--device", default="cpu", help="where the encoders run (cpu, cuda)")
    ap.add_argument("--query", action="append", default=[])
    ap.add_argument("--mode", default="hybrid", choices=["sparse", "dense", "hybrid"])
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--beir-url", default=BEIR_URL, help="where BEIR zips are: a URL with {name}")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        args.data = beir_dataset(args.data, "scifact", Path("runs/data"), args.beir_url)
    except DatasetUnavailableError as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    corpus = find(args.data, "corpus")

    t0 = time.perf_counter()
    done = args.collection / COLLECTION
    if done.exists() and json.loads(done.read_text())["job"]["sparse_model"] != args.model:
        logger.info("%s was built with another sparse model; rebuilding it with %s", args.collection, args.model)
        args.rebuild = True
    if args.rebuild or not done.exists():
        logger.info("indexing %s with %s + minilm-l6 on %s into %s", corpus, args.model, args.device, args.collection)
        stats, sparse, dense = build_collection(
            corpus, args.collection, args.model, "minilm-l6", overwrite=True, device=args.device
        )
        logger.info(
            "%d docs encoded in %.0f s, indexes built in %.1f s",
            stats.records,
            stats.encode_seconds,
            stats.build_seconds,
        )
    else:
        from lsr import DenseEncoder, SparseEncoder

        sparse = SparseEncoder.from_pretrained(args.model, device=args.device)
        dense = DenseEncoder.from_pretrained("minilm-l6", device=args.device)
    col = Collection.open(args.collection)
    logger.info(
        "collection %s: %d docs, sparse index %.1f MB (ready after %.0f s)",
        args.collection,
        col.num_docs,
        col.sparse.size_bytes / 1e6,
        time.perf_counter() - t0,
    )

    f = json.loads(EXPECTED.read_text())["fusion"]
    fusion = Fusion(f["method"], tuple(f["weights"]), f["rrf_k"], f["norm"])
    queries = {str(i + 1): q for i, q in enumerate(args.query)} or dict(
        list(read_queries(find(args.data, "queries")).items())[:3]
    )
    run, t = Searcher(col, sparse, dense).search(queries, args.mode, k=3, fusion=fusion)
    wanted = {d for hits in run.values() for d in hits}
    titles = {d: text[:90] for d, text in read_texts(corpus, wanted).items()}
    out = sys.stdout
    for qid, text in queries.items():
        out.write(f"\nquery: {text}\n")
        for rank, (doc, score) in enumerate(run[qid].items(), 1):
            out.write(f"  {rank}. {doc:>10}  {score:7.3f}  {titles.get(doc, '')}\n")
    out.write(
        f"\n{len(queries)} queries ({args.mode}): {1000 * t.encode_s / len(queries):.1f} ms encoding and "
        f"{sum(t.per_query_ms) / len(queries):.2f} ms search per query\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
