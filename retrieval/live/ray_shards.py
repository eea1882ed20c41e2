"""The shards of a sharded live index served by Ray actors (the ``ray`` extra): the engine in front of them is the
coordinator, and every endpoint of the REST service works on them as on one index.

    engine = Engine(root, open_index=opener())          # ray.init(...) first, or a local Ray starts
    engine.open_all()                                   # every sharded folder: one actor per shard

One actor holds one shard's LiveIndex (its folder on storage every node reaches; on one machine, a local path) and
is the shard's one writer. Ray restarts an actor that dies (``max_restarts=-1``); the new one opens the shard's last
committed state, which holds every write that was acknowledged, since a shard's upsert or delete returns only after
its catalog commit (fsync'd SQLite). A call that reached a dying actor is sent again (``retries``) once the actor is
back: upserts and deletes are idempotent, so a write retried after its commit changes nothing. Searches, gets and
stats go to the same actor; read replicas (``retrieval.shard_serving``) serve built, read-only shards.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .index import IndexStats, LiveIndex
from .sharded import AnyLiveIndex, ShardedLiveIndex, is_sharded, read_shards, shard_folder

logger = logging.getLogger(__name__)


class ShardHolder:
    """The body of a shard's actor: its LiveIndex, and its methods by name."""

    def __init__(self, folder: str) -> None:
        self.index = LiveIndex.open(folder)

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        got = getattr(self.index, method)
        return got(*args, **kwargs) if callable(got) else got

    def pid(self) -> int:
        import os

        return os.getpid()


class RemoteShard:
    """LiveIndex's methods, called on a shard's actor; a call that meets a dying actor is sent again."""

    def __init__(self, handle: Any, retries: int = 20, backoff: float = 0.25) -> None:
        self.handle = handle
        self.retries = retries
        self.backoff = backoff

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        import ray
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

        for attempt in range(self.retries + 1):
            try:
                return ray.get(self.handle.call.remote(method, *args, **kwargs))
            except (ActorDiedError, ActorUnavailableError, RayActorError) as e:
                if attempt == self.retries:
                    raise
                logger.warning("shard actor: %s failed (%s); retrying", method, type(e).__name__)
                time.sleep(self.backoff * min(attempt + 1, 8))
        raise AssertionError("unreachable")

    @property
    def spec(self) -> Any:
        return self._call("spec")

    @property
    def num_docs(self) -> int:
        return self._call("num_docs")

    def stats(self) -> IndexStats:
        return self._call("stats")

    def get(self, ids: Any) -> Any:
        return self._call("get", list(ids))

    def vector(self, doc_id: str) -> Any:
        return self._call("vector", doc_id)

    def search_sparse_batch(self, queries: Any, k: int, threads: int = 1, filter: Any = None) -> Any:
        return self._call("search_sparse_batch", queries, k, threads, filter)

    def search_dense_batch(self, vectors: Any, k: int, filter: Any = None) -> Any:
        return self._call("search_dense_batch", vectors, k, filter)

    def upsert(self, ids: Any, sparse: Any, dense: Any = None, texts: Any = None, metadata: Any = None) -> int:
        return self._call("upsert", list(ids), sparse, dense, texts=texts, metadata=metadata)

    def delete(self, ids: Any) -> list[str]:
        """The ids that were not there are read first: a delete sent again after its commit would find none of
        them and report them all missing (the coordinator's write lock keeps the two calls together)."""
        ids = list(ids)
        present = self.get(ids)
        self._call("delete", ids)
        return [d for d in ids if d not in present]

    def merge(self, *args: Any, **kwargs: Any) -> bool:
        return self._call("merge", *args, **kwargs)

    def copy_to(self, folder: Path) -> int:
        return self._call("copy_to", folder)

    def close(self) -> None:
        self._call("close")


def open_sharded(path: str | Path, cpus_per_shard: float = 0.5, retries: int = 20) -> ShardedLiveIndex:
    """A sharded live index whose shards are Ray actors (one each, ``cpus_per_shard`` reserved), on the connected
    Ray cluster; closing it closes the shards and ends the actors."""
    import ray

    path = Path(path).resolve()
    n = read_shards(path)
    actor = ray.remote(ShardHolder).options(max_restarts=-1, max_task_retries=0, num_cpus=cpus_per_shard)
    handles = [actor.remote(str(shard_folder(path, s))) for s in range(n)]
    shards = [RemoteShard(h, retries=retries) for h in handles]

    def end() -> None:
        for h in handles:
            ray.kill(h, no_restart=True)

    try:
        specs = {s.spec for s in shards}
        if len(specs) != 1:
            raise ValueError(f"{path}: the shards' specs differ: {specs}")
    except BaseException:
        end()
        raise
    logger.info("%s: %d shards on Ray actors", path, n)
    return ShardedLiveIndex(path, specs.pop(), shards, close=end, threads=len(shards))


def opener(cpus_per_shard: float = 0.5, retries: int = 20) -> Callable[[Path], AnyLiveIndex]:
    """An engine's ``open_index``: a sharded folder on Ray actors, any other folder in this process."""

    def open_index(path: Path) -> AnyLiveIndex:
        if is_sharded(path):
            return open_sharded(path, cpus_per_shard, retries)
        return LiveIndex.open(path)

    return open_index
