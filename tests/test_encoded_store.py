"""The benchmarks' compact vector store round-trips exactly (float16 weights)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.encoded import load, save
from indexer import SparseBatch


@given(st.integers(0, 2**32 - 1), st.integers(1, 300), st.integers(2_000, 50_000))
def test_roundtrip(tmp_path_factory, seed: int, nrows: int, part_bytes: int) -> None:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(nrows):
        n = int(rng.integers(0, 40))
        t = np.sort(rng.choice(30522, n, replace=False))
        rows.append((t.tolist(), (rng.random(n) * 3 + 0.01).astype(np.float16).tolist()))
    batch = SparseBatch.from_rows(rows)
    d = tmp_path_factory.mktemp("enc")
    save(d, "x", [f"id{i}" for i in range(nrows)], batch, part_bytes)
    ids, back = load(d, "x")
    assert ids == [f"id{i}" for i in range(nrows)]
    np.testing.assert_array_equal(back.indptr, batch.indptr)
    np.testing.assert_array_equal(back.indices, batch.indices)
    np.testing.assert_array_equal(back.values, batch.values)
