"""ShardedLiveIndex: N live indexes (shards) written and searched as one live index.

Layout of a sharded index folder::

    shards.json             the number of shards and how documents are routed
    shard-00/ ... shard-NN/ one LiveIndex each (catalog.sqlite, segments/)

A document lives in shard ``shard_of(id, n)`` (retrieval.sharded: BLAKE2b-64 of the id, modulo n), so an upsert
or a delete goes to the shards that own its ids, and a search goes to every shard and merges their top k by
score. Every shard has the index's fixed impact scale (``IndexSpec.max_weight``, required here), so each scores a
document exactly as one live index of all the documents does, and the merge is exact (tested: the same scores,
and the same documents wherever the k-th score is not tied).

A shard is anything with LiveIndex's methods: a LiveIndex in this process (``open``), or a shard served by a Ray
actor (``retrieval.live.ray_shards``). A write is checked whole (ids, vocabulary, weights, dense shape) before any
shard writes; each shard's part then commits atomically and durably before the write returns, one shard after
another. A write that fails midway (a shard's disk, say) leaves the shards it reached written; a retry of the
same write converges, since upserts and deletes are idempotent. Writes and snapshots take one lock, so a snapshot
is a consistent cut over all shards.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from indexer import SparseBatch
from indexer.atomic import staged, write_bytes

from ..filters import Node
from ..sharded import shard_of
from .catalog import CATALOG
from .index import IndexSpec, IndexStats, LiveIndex, StoredDoc, check_documents

logger = logging.getLogger(__name__)

SHARDS = "shards.json"
MAX_SHARDS = 64  # each shard is a catalog connection and its segments' files: an index is not split further
ROUTE = "blake2b-64(id) mod shards"


def shard_folder(path: Path, s: int) -> Path:
    return path / f"shard-{s:02d}"


def is_sharded(path: Path) -> bool:
    return (path / SHARDS).is_file()


def is_live(path: Path) -> bool:
    """A folder that opens as a live index, one shard or several."""
    return (path / CATALOG).is_file() or is_sharded(path)


def read_shards(path: Path) -> int:
    record = json.loads((path / SHARDS).read_text())
    if record.get("route") != ROUTE or not isinstance(record.get("shards"), int) or record["shards"] < 1:
        raise ValueError(f"{path / SHARDS}: not a sharded live index record: {record}")
    return record["shards"]


def open_live(path: str | Path) -> LiveIndex | ShardedLiveIndex:
    """Open a live index folder, sharded or not (in this process)."""
    path = Path(path)
    return ShardedLiveIndex.open(path) if is_sharded(path) else LiveIndex.open(path)


class ShardedLiveIndex:
    """Shards of one live index behind LiveIndex's methods; thread-safe (one writer at a time, searches beside)."""

    def __init__(
        self, path: Path, spec: IndexSpec, shards: Sequence[Any], close: Callable[[], None] | None = None,
        threads: int | None = None,
    ) -> None:  # fmt: skip
        """``threads``: shards searched at once (default: one per shard up to the cores; shards elsewhere, whose
        calls only wait, want one per shard)."""
        if not shards:
            raise ValueError("a sharded index needs at least one shard")
        if spec.max_weight is None:
            raise ValueError("a sharded index needs a fixed impact scale (max_weight) so that its shards score as one")
        self.path = path
        self.spec = spec
        self.shards = list(shards)
        self._on_close = close
        self._write = threading.Lock()
        threads = threads or max(1, min(len(self.shards), os.cpu_count() or 1))
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="lsr-live-shard")

    # -- opening -----------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | Path, spec: IndexSpec, shards: int) -> ShardedLiveIndex:
        """A new empty sharded index of ``shards`` live indexes; refuses an existing folder."""
        path = Path(path)
        if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= MAX_SHARDS:
            raise ValueError(f"shards must be an integer from 1 to {MAX_SHARDS}, not {shards!r}")
        if spec.max_weight is None:
            raise ValueError("a sharded index needs a fixed impact scale (max_weight) so that its shards score as one")
        if path.exists():
            raise FileExistsError(f"{path} exists")
        with staged(path, overwrite=False) as work:
            for s in range(shards):
                LiveIndex.create(shard_folder(work, s), spec).close()
            write_bytes(work / SHARDS, (json.dumps({"shards": shards, "route": ROUTE}, indent=1) + "\n").encode())
        return cls.open(path)

    @classmethod
    def open(cls, path: str | Path) -> ShardedLiveIndex:
        """Open every shard in this process; they must share one spec."""
        path = Path(path)
        n = read_shards(path)
        shards: list[LiveIndex] = []
        try:
            for s in range(n):
                shards.append(LiveIndex.open(shard_folder(path, s)))
        except BaseException:
            for shard in shards:
                shard.close()
            raise
        specs = {shard.spec for shard in shards}
        if len(specs) != 1:
            for shard in shards:
                shard.close()
            raise ValueError(f"{path}: the shards' specs differ: {specs}")
        return cls(path, specs.pop(), shards)

    def close(self) -> None:
        with self._write:
            self._pool.shutdown(wait=True)
            for shard in self.shards:
                shard.close()
            if self._on_close is not None:
                self._on_close()

    # -- reading -----------------------------------------------------------------------------------

    def _each(self, call: Callable[[Any], Any], shards: Sequence[int] | None = None) -> list[Any]:
        chosen = range(len(self.shards)) if shards is None else shards
        return list(self._pool.map(lambda s: call(self.shards[s]), chosen))

    def _route(self, ids: Sequence[str]) -> dict[int, list[int]]:
        """The positions of ``ids`` each shard owns."""
        parts: dict[int, list[int]] = {}
        for i, d in enumerate(ids):
            parts.setdefault(shard_of(d, len(self.shards)), []).append(i)
        return parts

    @property
    def num_docs(self) -> int:
        return sum(self._each(lambda s: s.num_docs))

    def stats(self) -> IndexStats:
        got = self._each(lambda s: s.stats())
        return IndexStats(sum(g.segments for g in got), sum(g.postings for g in got), sum(g.bytes for g in got))

    def get(self, ids: Sequence[str]) -> dict[str, StoredDoc]:
        parts = self._route(ids)
        out: dict[str, StoredDoc] = {}
        for s, pos in parts.items():
            out.update(self.shards[s].get([ids[i] for i in pos]))
        return out

    def vector(self, doc_id: str) -> tuple[np.ndarray, np.ndarray] | None:
        return self.shards[shard_of(doc_id, len(self.shards))].vector(doc_id)

    def search_sparse(self, indices: np.ndarray, values: np.ndarray, k: int) -> tuple[list[tuple[str, float]], int]:
        return self.search_sparse_batch(SparseBatch(np.array([0, len(indices)], np.uint64), indices, values), k)[0]

    def search_sparse_batch(
        self, queries: SparseBatch, k: int, threads: int = 1, filter: Node | None = None, algorithm: str | None = None
    ) -> list[tuple[list[tuple[str, float]], int]]:
        """Every shard's top ``k`` of each query (the shards in parallel, one thread each), merged by score; the
        postings scored are summed over the shards."""
        per_shard = self._each(lambda s: s.search_sparse_batch(queries, k, 1, filter, algorithm))
        out = []
        for q in range(queries.num_rows):
            hits = _merge([shard[q][0] for shard in per_shard], k)
            out.append((hits, sum(shard[q][1] for shard in per_shard)))
        return out

    def search_dense(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        return self.search_dense_batch(np.asarray(vector, np.float32)[None, :], k)[0]

    def search_dense_batch(
        self, vectors: np.ndarray, k: int, filter: Node | None = None
    ) -> list[list[tuple[str, float]]]:
        if self.spec.dense_dim is None:
            raise ValueError(f"index {self.path.name} has no dense vectors")
        per_shard = self._each(lambda s: s.search_dense_batch(vectors, k, filter))
        return [_merge([shard[q] for shard in per_shard], k) for q in range(len(vectors))]

    # -- writing -----------------------------------------------------------------------------------

    def upsert(
        self,
        ids: Sequence[str],
        sparse: SparseBatch,
        dense: np.ndarray | None = None,
        texts: Sequence[str | None] | None = None,
        metadata: Sequence[dict | None] | None = None,
    ) -> int:
        """Add or replace documents, each in its shard; searchable and durable when this returns."""
        n = len(ids)
        if n == 0:
            return 0
        sparse = check_documents(self.spec, ids, sparse, dense)  # the whole write, before any shard writes
        texts = list(texts) if texts is not None else [None] * n
        metadata = list(metadata) if metadata is not None else [None] * n
        parts = self._route(ids)
        with self._write:
            for s, pos in parts.items():
                self.shards[s].upsert(
                    [ids[i] for i in pos], sparse.take(pos), None if dense is None else dense[pos],
                    texts=[texts[i] for i in pos], metadata=[metadata[i] for i in pos],
                )  # fmt: skip
        return n

    def delete(self, ids: Sequence[str]) -> list[str]:
        """Delete documents from their shards; returns the ids that were not there."""
        parts = self._route(ids)
        missing: set[str] = set()
        with self._write:
            for s, pos in parts.items():
                missing.update(self.shards[s].delete([ids[i] for i in pos]))
        return [d for d in ids if d in missing]

    def merge(self, *args: Any, **kwargs: Any) -> bool:
        """One merge step in every shard that has one due; whether any merged."""
        return any(self._each(lambda s: s.merge(*args, **kwargs)))

    def copy_to(self, folder: Path) -> int:
        """Copy every shard's committed state into ``folder/shard-NN`` (LiveIndex.copy_to) and the shard record:
        writes wait meanwhile, so the copy is one consistent cut. Returns the number of documents."""
        with self._write:
            total = 0
            for s, shard in enumerate(self.shards):
                target = shard_folder(folder, s)
                target.mkdir()
                total += shard.copy_to(target)
            write_bytes(folder / SHARDS, (json.dumps({"shards": len(self.shards), "route": ROUTE}, indent=1)
                                          + "\n").encode())  # fmt: skip
            return total


def _merge(lists: Sequence[Sequence[tuple[str, float]]], k: int) -> list[tuple[str, float]]:
    """The top ``k`` of the shards' hits: by score, ties by document id."""
    hits = [h for one in lists for h in one]
    hits.sort(key=lambda h: (-h[1], h[0]))
    return hits[:k]


AnyLiveIndex = LiveIndex | ShardedLiveIndex  # what an engine serves under a name
