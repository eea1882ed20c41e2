"""A live index's expected contents as a plain dict, and the check that compares them
(shared by the live index and snapshot tests)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

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


def churn(index: LiveIndex, w: int, written: dict, lock, poke=None, steps: int = 25) -> None:  # noqa: ANN001
    """Writer ``w``'s share of a concurrency test: ``steps`` upserts of 3 of its 15 ids, every fourth step a delete,
    each recorded in ``written`` under ``lock`` once acknowledged; ``poke`` (a merger's) after each write."""
    rng = np.random.default_rng(w)
    for step in range(steps):
        ids = [f"w{w}-{i}" for i in rng.choice(15, size=3, replace=False)]
        if step % 4 == 3:
            index.delete(ids)
            with lock:
                for d in ids:
                    written.pop(d, None)
        else:
            batch, dense, new = docs(rng, ids)
            index.upsert(ids, batch, dense, texts=[new[d][2] for d in ids])
            with lock:
                written.update(new)
        if poke is not None:
            poke()


POOL = [f"d{i}" for i in range(30)]
# a hypothesis strategy: a short sequence of writes, each with its size
OPERATIONS = st.lists(st.tuples(st.sampled_from(["upsert", "delete", "merge"]), st.integers(1, 12)), min_size=1,
                      max_size=12)  # fmt: skip


def apply(index: LiveIndex, op: str, n: int, rng: np.random.Generator, model: dict) -> None:
    """One operation of OPERATIONS on ``index`` over the ids of POOL, mirrored in ``model`` (id -> doc), checking
    what the index returns."""
    if op == "upsert":
        ids = list(rng.choice(POOL, size=min(n, len(POOL)), replace=False))
        batch, dense, new = docs(rng, ids)
        assert index.upsert(ids, batch, dense, texts=[new[d][2] for d in ids]) == len(ids)
        model.update(new)
    elif op == "delete":
        ids = list(rng.choice(POOL, size=n, replace=False))
        assert set(index.delete(ids)) == {d for d in ids if d not in model}
        for d in ids:
            model.pop(d, None)
    else:
        index.merge(max_segments=1, count=2)
