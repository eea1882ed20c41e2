"""A corpus split into N sparse indexes by a hash of the document id, searched as one.

``build_sharded(collection, out, n)`` routes every document of a built collection (``lsr index``) to shard
``shard_of(id, n)`` and builds one index per shard with the corpus-wide largest weight as the top of every
shard's impact scale (one reduce pass over the collection's shards), so each shard scores a document exactly as a
single index of the whole corpus does. ``ShardedIndex`` searches every shard and merges their top k: the result
is the single index's (tested: the same scores, and the same documents wherever the k-th score is not tied).
This is the unit a cluster serves, one shard per process or machine; the merge is the coordinator's job.
"""

from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from indexer import Hit, Index, SparseBatch, build_index
from indexer.atomic import write_bytes

from .collection import COLLECTION, iter_shards

logger = logging.getLogger(__name__)

SHARDED = "sharded.json"


def shard_of(doc_id: str, n: int) -> int:
    """The shard of a document: the first 8 bytes of BLAKE2b of its id (UTF-8), modulo ``n``; stable across
    processes, machines and Python versions (unlike ``hash``)."""
    if n < 1:
        raise ValueError(f"the number of shards must be at least 1, not {n}")
    digest = hashlib.blake2b(doc_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % n


def build_sharded(collection: str | Path, out: str | Path, n: int, *, overwrite: bool = False) -> dict:
    """Split a built collection's sparse rows into ``n`` indexes under ``out/shard-NN``; returns what
    ``out/sharded.json`` records (shards, documents per shard, the shared largest weight)."""
    collection, out = Path(collection), Path(out)
    meta = json.loads((collection / COLLECTION).read_text())
    count = int(meta["shards"])
    if n < 1:
        raise ValueError(f"the number of shards must be at least 1, not {n}")
    top = 0.0  # the reduce pass: the corpus-wide largest weight, the top of every shard's impact scale
    for _, sparse, _ in iter_shards(collection, count, dense=False):
        if len(sparse.values):
            top = max(top, float(np.max(sparse.values)))
    docs = [0] * n
    for s in range(n):

        def batches(s: int = s):  # noqa: ANN202
            for ids, sparse, _ in iter_shards(collection, count, dense=False):
                keep = np.array([shard_of(d, n) == s for d in ids], dtype=bool)
                yield [d for d, k in zip(ids, keep) if k], sparse.take(np.flatnonzero(keep))

        manifest = build_index(
            out / f"shard-{s:02d}", batches, vocab_size=int(meta["vocab_size"]), vocab_hash=meta["vocab_hash"],
            model_id=meta["job"]["sparse_model"], overwrite=overwrite, max_weight=top if top > 0 else None,
        )  # fmt: skip
        docs[s] = manifest.num_docs
    record = {"shards": n, "documents": docs, "max_weight": top, "collection": str(collection.resolve()),
              "vocab_hash": meta["vocab_hash"], "route": "blake2b-64(id) mod shards"}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_bytes(out / SHARDED, (json.dumps(record, indent=2) + "\n").encode())
    logger.info("%s: %d documents in %d shards %s", out, sum(docs), n, docs)
    return record


class ShardedIndex:
    """N shard indexes searched as one: each query goes to every shard, the hits are merged by score."""

    def __init__(self, shards: list[Index]) -> None:
        if not shards:
            raise ValueError("a sharded index needs at least one shard")
        if len({s.vocab_size for s in shards}) != 1 or len({s.manifest.impact_scale for s in shards}) != 1:
            raise ValueError("shards must share the vocabulary and the impact scale (build them with build_sharded)")
        self.shards = shards

    @classmethod
    def open(cls, folder: str | Path) -> ShardedIndex:
        folder = Path(folder)
        record = json.loads((folder / SHARDED).read_text())
        return cls([Index.open(folder / f"shard-{s:02d}") for s in range(int(record["shards"]))])

    @property
    def num_docs(self) -> int:
        return sum(s.num_docs for s in self.shards)

    def search_batch(self, queries: SparseBatch, k: int = 10, threads: int = 1) -> list[list[Hit]]:
        """Each query's top ``k`` over all shards: by score, ties by document id (the merge is exact because
        every shard's scores are on the corpus-wide scale)."""
        with ThreadPoolExecutor(max_workers=max(1, min(threads, len(self.shards)))) as pool:
            results = list(pool.map(lambda s: (s, s.search_batch(queries, k=k, threads=1)), self.shards))
        merged: list[list[Hit]] = []
        for q in range(queries.num_rows):
            hits = [h for shard, res in results for h in shard.hits(res, q)]
            hits.sort(key=lambda h: (-h.score, h.doc_id))
            merged.append(hits[:k])
        return merged
