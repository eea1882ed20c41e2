"""Sharded sparse indexes (retrieval.sharded) against the single index of the same collection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from tiny_models import build_tiny_collection  # noqa: E402

from indexer import Index, SparseBatch, build_index  # noqa: E402
from retrieval.sharded import ShardedIndex, build_sharded, shard_of  # noqa: E402


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_collection(tmp_path_factory.mktemp("sharded"), 150, seed=4, shard_size=40)


def test_shard_of_is_stable_and_spreads() -> None:
    assert [shard_of(f"doc{i}", 4) for i in range(8)] == [shard_of(f"doc{i}", 4) for i in range(8)]
    counts = np.bincount([shard_of(f"doc{i}", 4) for i in range(4000)], minlength=4)
    assert counts.min() > 850  # about 1,000 each
    assert shard_of("x", 1) == 0
    with pytest.raises(ValueError):
        shard_of("x", 0)


@settings(max_examples=8, deadline=None)
@given(n=st.integers(1, 5), seed=st.integers(0, 2**31 - 1), k=st.integers(1, 40))
def test_sharded_search_equals_the_single_index(collection: Path, tmp_path_factory, n: int, seed: int, k: int) -> None:  # noqa: ANN001
    out = tmp_path_factory.mktemp("s")
    record = build_sharded(collection, out, n)
    assert sum(record["documents"]) == 150
    single = Index.open(collection / "sparse")
    sharded = ShardedIndex.open(out)
    assert sharded.num_docs == 150
    assert {s.manifest.impact_scale for s in sharded.shards} == {single.manifest.impact_scale}
    for s, shard in enumerate(sharded.shards):  # each document where its id says
        assert all(shard_of(shard.lexicon[i], n) == s for i in range(shard.num_docs))
    rng = np.random.default_rng(seed)
    queries = SparseBatch.from_rows(
        {int(t): float(rng.uniform(0.1, 3.0)) for t in rng.choice(single.vocab_size, int(rng.integers(1, 12)))}
        for _ in range(12)
    )
    want = single.search_batch(queries, k=k, threads=1)
    got = sharded.search_batch(queries, k=k)
    sharded.close()
    for q in range(queries.num_rows):
        a, b = single.hits(want, q), got[q]
        assert [h.score for h in a] == [h.score for h in b]  # the same scores, bit for bit
        if a:
            kth = a[-1].score  # documents agree except among those tied with the k-th score
            assert {h.doc_id for h in a if h.score > kth} == {h.doc_id for h in b if h.score > kth}


def test_a_shard_scale_below_its_own_weights_is_refused(tmp_path: Path) -> None:
    batch = SparseBatch.from_rows([{1: 2.0}, {2: 0.5}])
    with pytest.raises(ValueError, match="below"):
        build_index(tmp_path / "x", lambda: [(["a", "b"], batch)], vocab_size=8, max_weight=1.0)
    m = build_index(tmp_path / "y", lambda: [(["a", "b"], batch)], vocab_size=8, max_weight=4.0)
    assert m.impact_scale == pytest.approx(4.0 / 255)
