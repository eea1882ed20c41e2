"""The shards of a sharded live index served by Ray actors (the ``ray`` extra): the engine in front of them is the
coordinator, and every endpoint of the REST service works on them as on one index.

    engine = Engine(root, open_index=opener())          # ray.init(...) first, or a local Ray starts
    engine.open_all()                                   # every sharded folder: one actor per shard

One actor holds one shard's LiveIndex (its folder on storage every node reaches; on one machine, a local path) and
is the shard's one writer. Ray restarts an actor that dies (``max_restarts=-1``); the new one opens the shard's last
committed state, which holds every write that was acknowledged, since a shard's upsert or delete returns only after
its catalog commit (fsync'd SQLite). A call that reached a dying actor is sent again (``retries``) once the actor is
back: upserts and deletes are idempotent, so a write retried after its commit changes nothing.

Reads (searches, gets, stats) go to the same actor, or with ``readers`` > 0 to that many read replicas a shard
(``retrieval.live.reader.LiveReader`` on Ray actors, restarted as the writer is), in turn; a read that meets a
dying replica goes to the next one. A replica catches up with the shard's last commit before every read, so a
search sent after an acknowledged write finds it, whichever replica answers. Built, read-only shards have their
own replicas on Ray Serve (``retrieval.shard_serving``).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .index import IndexStats, LiveIndex
from .reader import LiveReader
from .sharded import AnyLiveIndex, ShardedLiveIndex, is_sharded, read_shards, shard_folder

logger = logging.getLogger(__name__)


READS = frozenset({"spec", "num_docs", "stats", "get", "vector", "search_sparse_batch", "search_dense_batch"})


class ShardHolder:
    """The body of a shard's actor: its LiveIndex (or, as a read replica, a LiveReader), and its methods by name."""

    def __init__(self, folder: str, reader: bool = False) -> None:
        self.index = LiveReader.open(folder) if reader else LiveIndex.open(folder)
        self.calls = 0  # answered since this process started

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        got = getattr(self.index, method)
        return got(*args, **kwargs) if callable(got) else got

    def answered(self) -> int:
        return self.calls

    def pid(self) -> int:
        import os

        return os.getpid()


class RemoteShard:
    """LiveIndex's methods, called on a shard's actor: writes on its writer, reads on its read replicas in turn
    (on the writer when it has none); a call that meets a dying actor is sent again, a read to the next replica."""

    def __init__(self, handle: Any, retries: int = 20, backoff: float = 0.25, readers: list[Any] | None = None) -> None:
        self.handle = handle
        self.readers = list(readers or [])
        self.retries = retries
        self.backoff = backoff
        self._turn = itertools.count()  # next() on it is atomic: threads share it

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        import ray
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

        handles = self.readers if self.readers and method in READS else [self.handle]
        first = next(self._turn)
        for attempt in range(self.retries + 1):
            handle = handles[(first + attempt) % len(handles)]
            try:
                return ray.get(handle.call.remote(method, *args, **kwargs))
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

    def search_sparse_batch(
        self, queries: Any, k: int, threads: int = 1, filter: Any = None, algorithm: str | None = None
    ) -> Any:
        return self._call("search_sparse_batch", queries, k, threads, filter, algorithm)

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


def open_sharded(
    path: str | Path, cpus_per_shard: float = 0.5, retries: int = 20, readers: int = 0
) -> ShardedLiveIndex:
    """A sharded live index whose shards are Ray actors (one writer each, ``cpus_per_shard`` reserved, and
    ``readers`` read replicas each reserving as much), on the connected Ray cluster; closing it closes the shards
    and ends the actors."""
    import ray

    if readers < 0:
        raise ValueError(f"readers must be >= 0, not {readers}")
    path = Path(path).resolve()
    n = read_shards(path)
    actor = ray.remote(ShardHolder).options(max_restarts=-1, max_task_retries=0, num_cpus=cpus_per_shard)
    handles = [actor.remote(str(shard_folder(path, s))) for s in range(n)]
    replicas: list[list[Any]] = [[] for _ in range(n)]

    def end() -> None:
        for h in handles + [r for rs in replicas for r in rs]:
            ray.kill(h, no_restart=True)

    try:
        specs = {RemoteShard(h, retries=retries).spec for h in handles}  # the writers open (and repair) first
        if len(specs) != 1:
            raise ValueError(f"{path}: the shards' specs differ: {specs}")
        for s in range(n):
            replicas[s] = [actor.remote(str(shard_folder(path, s)), True) for _ in range(readers)]
        shards = [RemoteShard(h, retries=retries, readers=rs) for h, rs in zip(handles, replicas)]
        if readers and {x.spec for x in shards} != specs:  # every replica answers before the index is handed out
            raise ValueError(f"{path}: a read replica's spec differs from its writer's")
    except BaseException:
        end()
        raise
    logger.info("%s: %d shards on Ray actors, %d read replicas each", path, n, readers)
    return ShardedLiveIndex(path, specs.pop(), shards, close=end, threads=len(shards))


def opener(cpus_per_shard: float = 0.5, retries: int = 20, readers: int = 0) -> Callable[[Path], AnyLiveIndex]:
    """An engine's ``open_index``: a sharded folder on Ray actors (``readers`` read replicas a shard), any other
    folder in this process."""

    def open_index(path: Path) -> AnyLiveIndex:
        if is_sharded(path):
            return open_sharded(path, cpus_per_shard, retries, readers)
        return LiveIndex.open(path)

    return open_index
