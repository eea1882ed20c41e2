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
from collections.abc import Callable, Iterable, Iterator, Sequence
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


def build_shards(
    out: str | Path,
    batches: Callable[[], Iterable[tuple[Sequence[str], SparseBatch]]],
    n: int,
    *,
    vocab_size: int,
    vocab_hash: str | None = None,
    model_id: str | None = None,
    overwrite: bool = False,
) -> dict:
    """Split documents read more than once (``build_index``'s ``batches``) into ``n`` indexes under
    ``out/shard-NN`` by ``shard_of``, every one on the corpus-wide impact scale (one reduce pass for the largest
    weight); writes and returns ``out/sharded.json`` (shards, documents per shard, the shared largest weight)."""
    out = Path(out)
    if n < 1:
        raise ValueError(f"the number of shards must be at least 1, not {n}")
    top = 0.0  # the reduce pass: the corpus-wide largest weight, the top of every shard's impact scale
    for _, sparse in batches():
        if len(sparse.values):
            top = max(top, float(np.max(sparse.values)))
    docs = [0] * n
    for s in range(n):

        def mine(s: int = s) -> Iterator[tuple[list[str], SparseBatch]]:
            for ids, sparse in batches():
                keep = [i for i, d in enumerate(ids) if shard_of(d, n) == s]
                yield [ids[i] for i in keep], SparseBatch(*sparse).take(keep)

        manifest = build_index(out / f"shard-{s:02d}", mine, vocab_size=vocab_size, vocab_hash=vocab_hash,
                               model_id=model_id, overwrite=overwrite, max_weight=top if top > 0 else None)  # fmt: skip
        docs[s] = manifest.num_docs
    record = {"shards": n, "documents": docs, "max_weight": top, "vocab_hash": vocab_hash,
              "route": "blake2b-64(id) mod shards"}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_bytes(out / SHARDED, (json.dumps(record, indent=2) + "\n").encode())
    logger.info("%s: %d documents in %d shards %s", out, sum(docs), n, docs)
    return record


def build_sharded(collection: str | Path, out: str | Path, n: int, *, overwrite: bool = False) -> dict:
    """``build_shards`` over a built collection's sparse rows (``lsr index``)."""
    collection = Path(collection)
    meta = json.loads((collection / COLLECTION).read_text())
    count = int(meta["shards"])

    def batches() -> Iterator[tuple[list[str], SparseBatch]]:
        for ids, sparse, _ in iter_shards(collection, count, dense=False):
            yield ids, sparse

    return build_shards(out, batches, n, vocab_size=int(meta["vocab_size"]), vocab_hash=meta["vocab_hash"],
                        model_id=meta["job"]["sparse_model"], overwrite=overwrite)  # fmt: skip


def merge(per_shard: Sequence[Sequence[Sequence[Hit]]], k: int) -> list[list[Hit]]:
    """Each query's top ``k`` of the shards' hits (``per_shard[s][q]``): by score, ties by document id."""
    merged: list[list[Hit]] = []
    for q in range(len(per_shard[0]) if per_shard else 0):
        hits = [h for shard in per_shard for h in shard[q]]
        hits.sort(key=lambda h: (-h.score, h.doc_id))
        merged.append(hits[:k])
    return merged


class ShardedIndex:
    """N shard indexes searched as one: each query goes to every shard (in parallel, one thread per shard), the
    hits are merged by score. Close it (or use it as a context manager) to stop its threads."""

    def __init__(self, shards: list[Index]) -> None:
        if not shards:
            raise ValueError("a sharded index needs at least one shard")
        if len({s.vocab_size for s in shards}) != 1 or len({s.manifest.impact_scale for s in shards}) != 1:
            raise ValueError("shards must share the vocabulary and the impact scale (build them with build_shards)")
        self.shards = shards
        self._pool = ThreadPoolExecutor(len(shards), thread_name_prefix="lsr-shard") if len(shards) > 1 else None

    @classmethod
    def open(cls, folder: str | Path) -> ShardedIndex:
        folder = Path(folder)
        record = json.loads((folder / SHARDED).read_text())
        return cls([Index.open(folder / f"shard-{s:02d}") for s in range(int(record["shards"]))])

    @property
    def num_docs(self) -> int:
        return sum(s.num_docs for s in self.shards)

    def search_batch(self, queries: SparseBatch, k: int = 10) -> list[list[Hit]]:
        """Each query's top ``k`` over all shards: by score, ties by document id (the merge is exact because
        every shard's scores are on the corpus-wide scale)."""
        if self._pool is None:
            results = [self.shards[0].search_batch(queries, k=k, threads=1)]
        else:
            results = list(self._pool.map(lambda s: s.search_batch(queries, k=k, threads=1), self.shards))
        hits = [[shard.hits(res, q) for q in range(queries.num_rows)] for shard, res in zip(self.shards, results)]
        return merge(hits, k)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> ShardedIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
