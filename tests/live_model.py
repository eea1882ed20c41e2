"""A live index's expected contents as a plain dict, and the check that compares them
(shared by the live index and snapshot tests)."""

from __future__ import annotations

import numpy as np

from indexer import SparseBatch
from retrieval.live import IndexSpec, LiveIndex

VOCAB, DIM = 40, 4
SPEC = IndexSpec("test-model", VOCAB, "sha256:test", "dense-test", DIM)


def docs(rng: np.random.Generator, ids: list[str]) -> tuple[SparseBatch, np.ndarray, dict]:
    rows, model = [], {}
    dense = rng.normal(size=(len(ids), DIM)).astype(np.float32)
    for i, d in enumerate(ids):
        terms = rng.choice(VOCAB, size=int(rng.integers(1, 8)), replace=False)
        weights = rng.uniform(0.1, 3.0, size=len(terms)).astype(np.float32)
        rows.append(dict(zip(terms.tolist(), weights.tolist())))
        model[d] = (dict(zip(terms.tolist(), weights.tolist())), dense[i], f"text of {d}")
    return SparseBatch.from_rows(rows), dense, model


def check(index: LiveIndex, model: dict, rng: np.random.Generator) -> None:
    assert index.num_docs == len(model)
    got = index.get(list(model) + ["never-written"])
    assert set(got) == set(model) and all(got[d].text == model[d][2] for d in model)
    for _ in range(3):
        q = {int(t): 1.0 for t in rng.choice(VOCAB, size=3, replace=False)}
        exact = {d: sum(w.get(t, 0.0) * qw for t, qw in q.items()) for d, (w, _, _) in model.items()}
        matching = {d for d, s in exact.items() if s > 0}
        idx = np.array(sorted(q), np.uint32)
        hits, _ = index.search_sparse(idx, np.ones(len(idx), np.float32), k=len(model) + 5)
        assert len(hits) == len({d for d, _ in hits}) == len(matching)
        assert {d for d, _ in hits} == matching
        for d, s in hits:  # per-segment 8-bit impacts: within a quantisation step per term
            assert abs(s - exact[d]) <= 3 * 3.0 / 255 + 1e-4
        top, _ = index.search_sparse(idx, np.ones(len(idx), np.float32), k=2)
        assert top == hits[:2]
        v = rng.normal(size=DIM).astype(np.float32)
        want = sorted(model, key=lambda d: -float(model[d][1] @ v))[:5]
        dense_hits = index.search_dense(v, 5)
        assert [d for d, _ in dense_hits] == want
        np.testing.assert_allclose(
            [s for _, s in dense_hits], [float(model[d][1] @ v) for d in want], rtol=1e-5, atol=1e-6
        )
