"""ShardedLiveIndex against one LiveIndex of the same documents (its slow, obviously-correct twin)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from live_model import DIM, SPEC, VOCAB, check, docs

from indexer import SparseBatch
from retrieval.filters import parse
from retrieval.live import LiveIndex, ShardedLiveIndex, open_live
from retrieval.sharded import shard_of
from retrieval.snapshot import restore, take

FIXED = replace(SPEC, max_weight=3.0)


def _same_hits(got: list[tuple[str, float]], want: list[tuple[str, float]], k: int) -> None:
    """The same scores bit for bit; the same documents above the k-th score (ties there may differ)."""
    assert [s for _, s in got] == [s for _, s in want]
    if len(want) == k:
        bar = want[-1][1]
        assert {d for d, s in got if s > bar} == {d for d, s in want if s > bar}
    else:
        assert {d for d, _ in got} == {d for d, _ in want}


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 4),
    st.lists(st.tuples(st.sampled_from(["upsert", "delete", "merge"]), st.integers(1, 12)), min_size=1, max_size=10),
    st.integers(1, 12),
)
def test_a_sharded_live_index_searches_as_one_index(tmp_path_factory, seed: int, n: int, ops, k: int) -> None:
    rng = np.random.default_rng(seed)
    root = tmp_path_factory.mktemp("sharded")
    sharded = ShardedLiveIndex.create(root / "sharded", FIXED, n)
    one = LiveIndex.create(root / "one", FIXED)
    try:
        _compare(rng, root, sharded, one, n, ops, k, seed)
    finally:  # hypothesis runs many examples: a failing one must not leak its files
        sharded.close()
        one.close()


def _compare(rng, root, sharded, one, n, ops, k, seed) -> None:  # noqa: ANN001
    model: dict = {}
    pool = [f"d{i}" for i in range(30)]
    for op, m in ops:
        if op == "upsert":
            ids = list(rng.choice(pool, size=m, replace=False))
            batch, dense, new = docs(rng, ids)
            meta = [{"even": int(d[1:]) % 2 == 0} for d in ids]
            assert sharded.upsert(ids, batch, dense, texts=[new[d][2] for d in ids], metadata=meta) == len(ids)
            one.upsert(ids, batch, dense, texts=[new[d][2] for d in ids], metadata=meta)
            model.update(new)
        elif op == "delete":
            ids = list(rng.choice([*pool, "never"], size=m, replace=False))
            assert sharded.delete(ids) == one.delete(ids)
            for d in ids:
                model.pop(d, None)
        else:
            sharded.merge(max_segments=1, count=2)
    check(sharded, model, np.random.default_rng(seed))
    for s, shard in enumerate(sharded.shards):  # every document in the shard its id routes to
        assert all(shard_of(d, n) == s for d in shard.get(list(model)))
    queries = SparseBatch.from_rows(
        [dict(zip(rng.choice(VOCAB, 4, replace=False).tolist(), rng.uniform(0.1, 2, 4).tolist())) for _ in range(4)]
    )
    even = parse({"field": "even", "eq": True})
    for node in (None, even):
        got = sharded.search_sparse_batch(queries, k, filter=node)
        want = one.search_sparse_batch(queries, k, filter=node)
        for (g, _), (w, _) in zip(got, want):
            _same_hits(g, w, k)
        vectors = rng.normal(size=(3, DIM)).astype(np.float32)
        for g, w in zip(sharded.search_dense_batch(vectors, k, node), one.search_dense_batch(vectors, k, node)):
            assert [d for d, _ in g] == [d for d, _ in w]
    for d in model:
        got, want = sharded.vector(d), one.vector(d)
        assert got is not None and want is not None
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    assert sharded.vector("never") is None
    assert sharded.num_docs == one.num_docs == len(model)
    assert sharded.stats().postings == sum(s.stats().postings for s in sharded.shards)
    sharded.close()
    reopened = open_live(root / "sharded")
    try:
        assert isinstance(reopened, ShardedLiveIndex)
        check(reopened, model, np.random.default_rng(seed))
    finally:
        reopened.close()


def test_bad_writes_to_a_sharded_index_change_no_shard(tmp_path: Path) -> None:
    index = ShardedLiveIndex.create(tmp_path / "idx", FIXED, 3)
    rng = np.random.default_rng(0)
    ids = [f"d{i}" for i in range(6)]
    batch, dense, _ = docs(rng, ids)
    with pytest.raises(ValueError, match="dense"):
        index.upsert(ids, batch, dense.astype(np.float64))
    with pytest.raises(ValueError, match="unique"):
        index.upsert(["a"] * 6, batch, dense)
    with pytest.raises(ValueError, match="term id"):
        index.upsert(ids[:2], SparseBatch.from_rows([{VOCAB: 1.0}, {1: 1.0}]), dense[:2])
    with pytest.raises(ValueError, match="fixed impact scale"):
        index.upsert(ids[:2], SparseBatch.from_rows([{1: 1.0}, {2: 3.5}]), dense[:2])
    assert index.num_docs == 0 and index.stats().segments == 0
    with pytest.raises(FileExistsError):
        ShardedLiveIndex.create(tmp_path / "idx", FIXED, 2)
    with pytest.raises(ValueError, match="fixed impact scale"):
        ShardedLiveIndex.create(tmp_path / "free", SPEC, 2)
    for bad in (0, 65, True, 2.0):
        with pytest.raises(ValueError, match="shards must be"):
            ShardedLiveIndex.create(tmp_path / f"bad-{bad}", FIXED, bad)
    assert not (tmp_path / "free").exists()
    index.close()


def test_a_snapshot_of_a_sharded_index_restores_every_shard(tmp_path: Path) -> None:
    index = ShardedLiveIndex.create(tmp_path / "idx", FIXED, 3)
    rng = np.random.default_rng(5)
    ids = [f"d{i}" for i in range(20)]
    batch, dense, model = docs(rng, ids)
    index.upsert(ids, batch, dense, texts=[model[d][2] for d in ids])
    info = take(index, tmp_path / "snaps" / "idx-1")
    assert info.num_docs == 20
    index.delete(ids[:5])
    back = restore(tmp_path / "snaps" / "idx-1", tmp_path / "back")
    assert isinstance(back, ShardedLiveIndex) and len(back.shards) == 3
    check(back, model, np.random.default_rng(5))
    back.close()
    index.close()
