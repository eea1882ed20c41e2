"""A sharded live index whose shards are Ray actors (retrieval.live.ray_shards): the same answers as the in-process
ShardedLiveIndex, and a shard actor killed under write load loses no acknowledged write. A local Ray is started
by the test."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from live_model import SPEC, VOCAB, check, docs  # noqa: E402

from indexer import SparseBatch  # noqa: E402
from retrieval.live import ShardedLiveIndex  # noqa: E402
from retrieval.live.ray_shards import open_sharded  # noqa: E402

FIXED = replace(SPEC, max_weight=3.0)


@pytest.fixture(scope="module")
def cluster():  # noqa: ANN201
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_shards_on_actors_survive_a_kill_under_writes_and_answer_as_in_process(tmp_path: Path, cluster) -> None:  # noqa: ANN001
    ShardedLiveIndex.create(tmp_path / "idx", FIXED, 3).close()
    index = open_sharded(tmp_path / "idx", cpus_per_shard=0.1)
    rng = np.random.default_rng(3)
    model: dict = {}
    acknowledged: list[str] = []
    victim = index.shards[1]
    before = ray.get(victim.handle.pid.remote())
    killed = threading.Event()

    def kill() -> None:
        time.sleep(1.0)  # writes are under way by now
        ray.kill(victim.handle, no_restart=False)  # Ray restarts it, as after a crash
        killed.set()

    killer = threading.Thread(target=kill)
    killer.start()
    try:
        after = 0  # batches acknowledged after the kill
        for b in range(1000):
            ids = [f"d{b}-{i}" for i in range(4)] + ([f"d{b - 1}-0"] if b else [])  # a replace in every batch
            batch, dense, new = docs(rng, ids)
            assert index.upsert(ids, batch, dense, texts=[new[d][2] for d in ids]) == len(ids)
            acknowledged += ids
            model.update(new)
            if b % 7 == 3:
                gone = [f"d{b}-1"]
                assert index.delete(gone) == []
                for d in gone:
                    model.pop(d)
            if killed.is_set():
                after += 1
                if after == 15:
                    break
        killer.join()
        assert killed.is_set() and after == 15 and b > 15  # the kill came while writes were under way
        assert ray.get(victim.handle.pid.remote()) != before  # a new process holds shard 1
        check(index, model, np.random.default_rng(4))  # every acknowledged write is there
        assert set(index.get(acknowledged)) == set(model)
        q = SparseBatch.from_rows([{int(t): 1.0 for t in rng.choice(VOCAB, 3, replace=False)} for _ in range(5)])
        remote = index.search_sparse_batch(q, 10)
    finally:
        index.close()
    local = ShardedLiveIndex.open(tmp_path / "idx")  # the same folders, in this process
    try:
        assert local.search_sparse_batch(q, 10) == remote
        check(local, model, np.random.default_rng(4))
    finally:
        local.close()


def test_the_service_coordinates_shards_on_ray_actors(tmp_path: Path, cluster) -> None:  # noqa: ANN001
    """LSR_RAY_ADDRESS set: POST /v1/indexes with shards puts each shard on an actor, and writes, searches, explain
    and snapshots answer as an in-process index of the same documents."""
    pytest.importorskip("torch")
    from fastapi.testclient import TestClient
    from loopback import wait_client_ready

    from retrieval.live.ray_shards import RemoteShard
    from service.app import create_app
    from service.settings import Settings

    app = create_app(Settings(root=tmp_path, ray_address="local", ray_cpus_per_shard=0.1))
    texts = [
        "cells divide by mitosis",
        "proteins fold in the cell",
        "membranes hold receptors",
        "the immune response to viruses",
        "mitochondria make energy for cells",
        "receptors bind ligands",
    ]
    docs = [{"id": f"d{i}", "text": t} for i, t in enumerate(texts)]
    with TestClient(app) as c:
        wait_client_ready(c)
        for name, shards in (("one", 1), ("four", 4)):
            r = c.post("/v1/indexes", json={"name": name, "dense_model": None, "max_weight": 50.0, "shards": shards})
            assert r.status_code == 201 and r.json()["shards"] == shards, r.text
            assert c.post(f"/v1/indexes/{name}/documents", json={"documents": docs}).json()["upserted"] == 6
        index = app.state.engine.get("four")
        assert all(isinstance(s, RemoteShard) for s in index.shards)
        for q in ("cells", "receptors and membranes", "energy"):
            one, four = (c.post(f"/v1/indexes/{n}/search", json={"query": q, "top_k": 6}).json()["hits"]
                         for n in ("one", "four"))  # fmt: skip
            assert sorted((h["score"], h["id"]) for h in four) == sorted((h["score"], h["id"]) for h in one)
        explain = {"query": "cells", "doc_id": "d0"}
        assert (
            c.post("/v1/indexes/four/explain", json=explain).json()
            == c.post("/v1/indexes/one/explain", json=explain).json()
        )
        snap = c.post("/v1/indexes/four/snapshots").json()
        back = c.post(f"/v1/snapshots/{snap['id']}/restore", json={"index": "back"}).json()
        assert back["shards"] == 4 and back["num_docs"] == 6
    assert ray.is_initialized()  # the test's cluster: the app joined it, so it leaves it running


def _as_dict(row) -> dict[int, float]:  # noqa: ANN001
    return {int(t): float(w) for t, w in zip(*row) if w > 1e-3}


def test_queries_encoded_on_serve_replicas_with_request_batching(tmp_path: Path, cluster) -> None:  # noqa: ANN001
    """Encoders(remote=remote_queries(...)): each query is a request to a Ray Serve replica that batches them;
    the vectors are the local encoder's, and an engine searching through them finds what a local one finds."""
    pytest.importorskip("torch")
    serve = pytest.importorskip("ray.serve")
    from retrieval.encoder_serving import app_name, remote_queries
    from retrieval.encoders import Encoders
    from retrieval.engine import Engine
    from retrieval.query import Query

    remote, local = Encoders(remote=remote_queries(replicas=1, cpus=0.1, max_batch=16, wait_s=0.1)), Encoders()
    texts = [f"how do cells of type {i} divide" for i in range(12)]
    try:
        for got, want in zip(
            remote.queries("sparse", "splade-tiny", texts), local.queries("sparse", "splade-tiny", texts)
        ):
            g, w = _as_dict(got), _as_dict(want)
            assert g.keys() == w.keys() and all(abs(g[t] - w[t]) < 1e-4 for t in g)
        sizes = serve.get_app_handle(app_name("sparse", "splade-tiny")).batch_sizes.remote().result()
        assert sum(sizes) == 12 and max(sizes) > 1, sizes  # the requests were batched
        dense = remote.queries("dense", "minilm-l6", texts[:3])
        np.testing.assert_allclose(np.stack(dense), np.stack(local.queries("dense", "minilm-l6", texts[:3])), atol=1e-5)
        engines = [Engine(tmp_path / "remote", remote), Engine(tmp_path / "local", local)]
        found = []
        for engine in engines:
            engine.open_all()
            engine.create("sci", "splade-tiny", None)
            engine.upsert("sci", ["a", "b", "c"], ["cells divide", "proteins fold", "cells and proteins"], [None] * 3)
            found.append([[h[0] for h in r.hits] for r in engine.search_batch("sci", [Query(text=t) for t in texts])])
            engine.close()
        assert found[0] == found[1]
    finally:
        serve.shutdown()


def test_read_replicas_answer_every_read_see_every_write_and_survive_a_kill(tmp_path: Path, cluster) -> None:  # noqa: ANN001
    """readers=2: each shard's searches and gets go to its two replicas in turn (the writer answers none), a get
    right after each acknowledged upsert finds it whichever replica answers, a replica killed meanwhile is
    restarted while the other answers, and the results equal the in-process index's."""
    ShardedLiveIndex.create(tmp_path / "idx", FIXED, 2).close()
    index = open_sharded(tmp_path / "idx", cpus_per_shard=0.1, readers=2)
    rng = np.random.default_rng(5)
    model: dict = {}
    try:
        shard = index.shards[0]
        assert len(shard.readers) == 2
        pids = {ray.get(h.pid.remote()) for h in [shard.handle, *shard.readers]}
        assert len(pids) == 3  # three processes
        victim = shard.readers[0]
        writer_calls = ray.get(shard.handle.answered.remote())
        for b in range(30):
            ids = [f"d{b}-{i}" for i in range(4)]
            batch, dense, new = docs(rng, ids)
            index.upsert(ids, batch, dense, texts=[new[d][2] for d in ids])
            model.update(new)
            assert set(index.get(ids)) == set(ids)  # read after write, on a replica
            assert index.num_docs == len(model)
            if b == 10:
                ray.kill(victim, no_restart=False)  # Ray restarts it, as after a crash
        check(index, model, np.random.default_rng(6))
        q = SparseBatch.from_rows([{int(t): 1.0 for t in rng.choice(VOCAB, 3, replace=False)} for _ in range(5)])
        remote = index.search_sparse_batch(q, 10)
        # the writer answered the upserts routed to it (at most one a batch), none of the 60+ reads
        assert 0 < ray.get(shard.handle.answered.remote()) - writer_calls <= 30
        assert all(ray.get(h.answered.remote()) > 0 for h in shard.readers)
    finally:
        index.close()
    local = ShardedLiveIndex.open(tmp_path / "idx")
    try:
        assert local.search_sparse_batch(q, 10) == remote
    finally:
        local.close()
