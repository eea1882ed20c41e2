"""Sharded search on Ray Serve (retrieval.shard_serving) against the in-process ShardedIndex, with a replica
killed while queries run. A local Ray and Serve are started by the test."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")

from tiny_models import build_tiny_collection  # noqa: E402

from indexer import SparseBatch  # noqa: E402
from retrieval.shard_serving import deploy  # noqa: E402
from retrieval.sharded import ShardedIndex, build_sharded  # noqa: E402


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("serve")
    build_sharded(build_tiny_collection(folder, 120, seed=8, shard_size=50), folder / "sharded", 3)
    return folder / "sharded"


@pytest.fixture(scope="module")
def cluster():  # noqa: ANN201
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    serve.shutdown()
    ray.shutdown()


def queries(seed: int, n: int = 10) -> SparseBatch:
    rng = np.random.default_rng(seed)
    return SparseBatch.from_rows(
        {int(t): float(rng.uniform(0.1, 3.0)) for t in rng.choice(45, int(rng.integers(1, 8)))} for _ in range(n)
    )


def test_served_shards_answer_as_the_in_process_index_and_survive_a_killed_replica(sharded: Path, cluster) -> None:  # noqa: ANN001
    client = deploy(sharded, replicas=2, cpus_per_replica=0.1)  # 6 replicas on a 2-CPU Ray
    local = ShardedIndex.open(sharded)
    assert client.num_docs == local.num_docs == 120
    for seed in range(3):
        q = queries(seed)
        assert client.search_batch(q, k=7) == local.search_batch(q, k=7)

    # kill one replica of shard 1: Serve starts another, and no query fails or changes meanwhile
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if "lsr-shard-01" in a["name"]]
    replicas = [n for n in names if "REPLICA" in n.upper()]
    assert len(replicas) == 2, names
    ray.kill(ray.get_actor(replicas[0], namespace="serve"), no_restart=True)
    deadline, seed = time.time() + 20, 10
    while time.time() < deadline:
        q = queries(seed)
        assert client.search_batch(q, k=5) == local.search_batch(q, k=5)
        seed += 1
        alive = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if "lsr-shard-01" in a["name"]]
        if len([n for n in alive if "REPLICA" in n.upper()]) == 2 and replicas[0] not in alive:
            break
        time.sleep(0.5)
    alive = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if "lsr-shard-01" in a["name"]]
    assert replicas[0] not in alive and len([n for n in alive if "REPLICA" in n.upper()]) == 2  # replaced
    local.close()
    with pytest.raises(ValueError, match="replicas"):
        deploy(sharded, replicas=0)
