"""The main job, end to end on the embedded defaults: index BEIR scifact with SPLADE-tiny
into our index, then answer searches.

    python -m eval.quickstart [--data ../shared/data/scifact] [--index runs/scifact-splade-tiny]
                              [--query "..."]

Interim entry point until the `lsr index/search/eval` command line (issue #4) exists.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from indexer import Index, IndexBuilder

logger = logging.getLogger(__name__)

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"


def read_beir(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def find(data: Path, name: str) -> Path:
    for cand in (data / f"{name}.jsonl.gz", data / f"{name}.jsonl"):
        if cand.exists():
            return cand
    raise FileNotFoundError(
        f"no {name}.jsonl[.gz] in {data}: pass --data pointing at a BEIR dataset folder "
        "(scifact ships in ../shared/data/scifact)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--index", type=Path, default=Path("runs/scifact-splade-tiny"))
    ap.add_argument("--model", default="splade-tiny")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--query", action="append", default=[])
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    from lsr import SparseEncoder

    encoder = SparseEncoder.from_pretrained(args.model)
    if args.rebuild or not (args.index / "manifest.json").exists():
        corpus = read_beir(find(args.data, "corpus"))
        ids = [str(d["_id"]) for d in corpus]
        texts = [f"{d.get('title') or ''} {d.get('text') or ''}".strip() for d in corpus]
        logger.info("encoding %d documents with %s on CPU", len(texts), args.model)
        t0 = time.perf_counter()
        with IndexBuilder(
            args.index,
            vocab_size=encoder.vocab_size,
            model_id=args.model,
            vocab_hash=encoder.vocab_hash,
            overwrite=True,
        ) as b:
            step = 512
            for lo in range(0, len(texts), step):
                b.add(ids[lo : lo + step], encoder.encode_documents(texts[lo : lo + step], batch_size=args.batch_size))
                done = min(lo + step, len(texts))
                rate = done / (time.perf_counter() - t0)
                logger.info("  %d/%d docs, %.0f docs/s, ETA %.0f s", done, len(texts), rate, (len(texts) - done) / rate)
        logger.info(
            "indexed in %.1f s (%d truncated at %d tokens)",
            time.perf_counter() - t0,
            encoder.stats["truncated"],
            encoder.config.max_length,
        )
    index = Index.open(args.index)
    index.check_vocab(encoder.vocab_hash)
    logger.info(
        "index %s: %d docs, %d postings, %.1f MB",
        args.index,
        index.num_docs,
        index.num_postings,
        index.size_bytes / 1e6,
    )

    queries = args.query or [str(q["text"]) for q in read_beir(find(args.data, "queries"))[:3]]
    qb = encoder.encode_queries(queries)
    t0 = time.perf_counter()
    res = index.search_batch(qb, k=3, threads=1)
    took = (time.perf_counter() - t0) * 1000 / len(queries)
    corpus_text = {}
    if (args.data / "corpus.jsonl.gz").exists() or (args.data / "corpus.jsonl").exists():
        wanted = {index.lexicon[int(d)] for d in res.docs[res.docs >= 0]}
        corpus_text = {
            str(d["_id"]): d.get("title") or d.get("text", "")[:80]
            for d in read_beir(find(args.data, "corpus"))
            if str(d["_id"]) in wanted
        }
    out = sys.stdout
    for i, q in enumerate(queries):
        out.write(f"\nquery: {q}\n")
        for rank, hit in enumerate(index.hits(res, i), 1):
            out.write(f"  {rank}. {hit.doc_id:>10}  {hit.score:7.3f}  {corpus_text.get(hit.doc_id, '')[:90]}\n")
    out.write(
        f"\n{len(queries)} queries, {took:.3f} ms per query (search only), avg query nnz "
        f"{qb.nnz / max(qb.num_rows, 1):.0f}, postings scored {int(np.sum(res.postings))}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
