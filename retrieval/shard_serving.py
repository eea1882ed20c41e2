"""Sharded search served by Ray Serve (the ``ray`` extra): one deployment per shard, each with replicas, and a
client that fans a batch of queries out to every shard and merges their hits (``sharded.merge``).

    client = deploy("runs/sharded", replicas=2)        # a folder written by sharded.build_shards
    hits = client.search_batch(queries, k=10)           # the ShardedIndex's results, over the cluster

A replica opens its shard's index read-only (memory-mapped), so replicas of one shard share the page cache of a
node. Ray Serve restarts a replica that dies; a call that reached a dying replica is retried (``retries``), so a
query fails only if no replica of a shard answers in that many tries. What is not here yet: live indexes (upserts
and deletes routed to their shard) and the FastAPI coordinator in front of this client.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from indexer import Hit, Index, SparseBatch

from .sharded import SHARDED, merge

logger = logging.getLogger(__name__)


class ShardReplica:
    """One replica of one shard: the shard's index, searched one batch of queries per call."""

    def __init__(self, folder: str) -> None:
        self.index = Index.open(folder)

    def search(self, indptr: Any, indices: Any, values: Any, k: int) -> list[list[tuple[str, float]]]:
        res = self.index.search_batch(SparseBatch(indptr, indices, values), k=k, threads=1)
        return [[(h.doc_id, h.score) for h in self.index.hits(res, q)] for q in range(len(res.counts))]

    def num_docs(self) -> int:
        return self.index.num_docs


class ShardClient:
    """Fans queries out to every shard's deployment and merges the hits."""

    def __init__(self, handles: list[Any], retries: int = 5) -> None:
        if not handles:
            raise ValueError("no shard deployments")
        self.handles = handles
        self.retries = retries

    def _call(self, s: int, method: str, *args: Any) -> Any:
        for attempt in range(self.retries + 1):
            try:
                return getattr(self.handles[s], method).remote(*args).result()
            except Exception as e:  # noqa: BLE001 - a dying replica's error types vary with Ray's versions
                if attempt == self.retries:
                    raise
                logger.warning("shard %d: %s failed (%s); retrying", s, method, type(e).__name__)
                time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    @property
    def num_docs(self) -> int:
        return sum(self._call(s, "num_docs") for s in range(len(self.handles)))

    def search_batch(self, queries: SparseBatch, k: int = 10) -> list[list[Hit]]:
        q = SparseBatch(*queries)
        calls = [h.search.remote(q.indptr, q.indices, q.values, k) for h in self.handles]
        per_shard = []
        for s, call in enumerate(calls):
            try:
                rows = call.result()
            except Exception:  # noqa: BLE001 - retried below, on whichever replica answers
                rows = self._call(s, "search", q.indptr, q.indices, q.values, k)
            per_shard.append([[Hit(d, score) for d, score in row] for row in rows])
        return merge(per_shard, k)


def deploy(
    folder: str | Path, replicas: int = 1, name: str = "lsr-shard", retries: int = 5, cpus_per_replica: float = 1.0
) -> ShardClient:
    """Run one Ray Serve application per shard of ``folder`` (``replicas`` each, ``cpus_per_replica`` reserved by
    each: a search runs on one thread) on the connected Ray cluster (``ray.init`` first, or Serve starts a local
    one) and return a client for them. Serve waits until every replica is placed, so the cluster must have the
    CPUs for shards x replicas x cpus_per_replica."""
    from ray import serve

    folder = Path(folder).resolve()
    record = json.loads((folder / SHARDED).read_text())
    if replicas < 1:
        raise ValueError(f"replicas must be at least 1, not {replicas}")
    deployment = serve.deployment(ShardReplica, max_ongoing_requests=16,
                                  ray_actor_options={"num_cpus": cpus_per_replica})  # fmt: skip
    handles = []
    for s in range(int(record["shards"])):
        app = f"{name}-{s:02d}"
        handle = serve.run(
            deployment.options(name=app, num_replicas=replicas).bind(str(folder / f"shard-{s:02d}")),
            name=app, route_prefix=None,
        )  # fmt: skip
        handles.append(handle)
    logger.info("%s: %d shards x %d replicas on Ray Serve", folder, len(handles), replicas)
    return ShardClient(handles, retries=retries)
