"""Encode a BEIR-style JSONL(.gz) file with SPLADE and store the vectors compactly.

Stored per name: ``<name>.ids.txt`` (one id a line) and ``<name>.partNNN.npz``
files of at most ``--part-bytes`` each, holding consecutive rows as
``indptr`` (int64), ``delta`` (uint16 term-id gaps inside a row, the first
gap from 0) and ``values`` (float16 weights). Term ids are < 65,536
(BERT's vocabulary is 30,522). The float16 weights are the float vectors that
the benchmarks call "float".

    python -m benchmarks.encoded --input corpus.jsonl.gz --name docs --out DIR --device cuda
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import time
from pathlib import Path

import numpy as np

from indexer.csr import SparseBatch

logger = logging.getLogger(__name__)


def read_jsonl(path: Path, fields: tuple[str, ...]) -> tuple[list[str], list[str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    ids, texts = [], []
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            ids.append(str(rec["_id"]))
            texts.append(" ".join(str(rec.get(k) or "") for k in fields).strip())
    return ids, texts


def save(out: Path, name: str, ids: list[str], batch: SparseBatch, part_bytes: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.ids.txt").write_text("\n".join(ids) + "\n")
    rows_per_part = max(1, int(part_bytes / max(4.2 * batch.nnz / max(batch.num_rows, 1), 1)))
    for p, lo in enumerate(range(0, batch.num_rows, rows_per_part)):
        hi = min(batch.num_rows, lo + rows_per_part)
        a, b = int(batch.indptr[lo]), int(batch.indptr[hi])
        idx = batch.indices[a:b].astype(np.int64)
        indptr = (batch.indptr[lo : hi + 1] - batch.indptr[lo]).astype(np.int64)
        delta = np.diff(idx, prepend=0)
        delta[indptr[:-1][np.diff(indptr) > 0]] = idx[indptr[:-1][np.diff(indptr) > 0]]
        np.savez_compressed(
            out / f"{name}.part{p:03d}.npz",
            indptr=indptr,
            delta=delta.astype(np.uint16),
            values=batch.values[a:b].astype(np.float16),
        )


def load(directory: Path, name: str) -> tuple[list[str], SparseBatch]:
    ids = (directory / f"{name}.ids.txt").read_text().splitlines()
    indptrs, indices, values = [np.zeros(1, dtype=np.uint64)], [], []
    offset = 0
    for part in sorted(directory.glob(f"{name}.part*.npz")):
        z = np.load(part)
        indptr, delta = z["indptr"], z["delta"].astype(np.int64)
        starts = indptr[:-1][np.diff(indptr) > 0]
        # undo the per-row delta coding: cumulative sum restarted at each row start
        csum = np.cumsum(delta)
        base = np.zeros_like(delta)
        base[starts] = csum[starts] - delta[starts]
        base = np.maximum.accumulate(base) if len(base) else base
        indices.append((csum - base).astype(np.uint32))
        values.append(z["values"].astype(np.float32))
        indptrs.append((indptr[1:] + offset).astype(np.uint64))
        offset += int(indptr[-1])
    batch = SparseBatch(np.concatenate(indptrs), np.concatenate(indices), np.concatenate(values))
    # weights below float16's range were stored as 0: drop them so rows stay canonical
    keep = batch.values > 0
    if not keep.all():
        rows = np.repeat(np.arange(batch.num_rows), np.diff(batch.indptr.astype(np.int64)))
        counts = np.bincount(rows[keep], minlength=batch.num_rows)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.uint64)
        batch = SparseBatch(indptr, batch.indices[keep], batch.values[keep])
    if batch.num_rows != len(ids):
        raise ValueError(f"{directory}/{name}: {len(ids)} ids but {batch.num_rows} rows")
    return ids, batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", type=Path, required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--fields", default="title,text")
    ap.add_argument("--queries", action="store_true", help="encode as queries (query max length)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default="splade-tiny")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--part-bytes", type=int, default=15_000_000)
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from lsr import SparseEncoder

    enc = SparseEncoder.from_pretrained(args.model, device=args.device)
    ids, texts = read_jsonl(args.input, tuple(args.fields.split(",")))
    if args.limit:
        ids, texts = ids[: args.limit], texts[: args.limit]
    t0 = time.perf_counter()
    fn = enc.encode_queries if args.queries else enc.encode_documents
    batch = fn(texts, batch_size=args.batch_size)
    dt = time.perf_counter() - t0
    logger.info(
        "%s: %d texts in %.1f s (%.0f/s), avg nnz %.1f, truncated %d",
        args.name,
        len(texts),
        dt,
        len(texts) / dt,
        batch.nnz / max(len(texts), 1),
        enc.stats["truncated"],
    )
    save(args.out, args.name, ids, batch, args.part_bytes)


if __name__ == "__main__":
    main()
