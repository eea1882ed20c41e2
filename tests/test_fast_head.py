"""The native int8-screened max head (lsr._head) against the obvious twin: every logit in float64, max per text."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

_head = pytest.importorskip("lsr._head")

MODES = [False] + ([True] if _head.simd_available() else [])


def reference(w: np.ndarray, b: np.ndarray, x: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    logits = x.astype(np.float64) @ w.T.astype(np.float64) + b
    out = np.zeros((len(offsets) - 1, w.shape[0]))
    for i in range(len(offsets) - 1):
        if offsets[i + 1] > offsets[i]:
            out[i] = np.maximum(logits[offsets[i] : offsets[i + 1]].max(axis=0), 0.0)
    return out


def dense(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, n: int, V: int) -> np.ndarray:
    out = np.zeros((n, V))
    for i in range(n):
        out[i, indices[indptr[i] : indptr[i + 1]]] = values[indptr[i] : indptr[i + 1]]
    return out


@settings(max_examples=40)
@given(
    seed=st.integers(0, 2**32 - 1),
    V=st.integers(1, 70),
    dim=st.integers(1, 40),
    counts=st.lists(st.integers(0, 21), min_size=1, max_size=6),
    scale=st.sampled_from([0.01, 1.0, 30.0]),
    threads=st.integers(1, 3),
)
def test_matches_float64_reference(seed: int, V: int, dim: int, counts: list[int], scale: float, threads: int) -> None:
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((V, dim)) * rng.choice([0.1, 1.0], size=(V, 1))).astype(np.float32)
    b = rng.normal(-1.0, 1.0, V).astype(np.float32)
    x = (rng.standard_normal((sum(counts), dim)) * scale).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = 0.0  # exact zeros, and all-zero rows now and then
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    want = reference(w, b, x, offsets)
    head = _head.Head(w, b)
    for simd in MODES:
        indptr, indices, values, exact = _head.max_logits(head, x, offsets, threads, simd)
        assert indices.dtype == np.uint32 and values.dtype == np.float32 and indptr.dtype == np.uint64
        assert (values > 0).all()
        got = dense(indptr, indices, values, len(counts), V)
        tol = 1e-5 * (1 + np.abs(x).max(initial=0) * np.abs(w).max() * dim)
        np.testing.assert_allclose(got, want, atol=tol, rtol=1e-5)
        clear = np.abs(want) > tol  # the support agrees wherever the true max is not within rounding of 0
        assert ((got > 0) == (want > 0))[clear].all()
        assert exact <= sum(counts) * V


def test_screen_skips_most_of_the_work() -> None:
    """With realistic logits (mostly negative) the float32 recompute touches few (token, entry) pairs."""
    rng = np.random.default_rng(0)
    V, dim, T = 3000, 64, 200
    w = (rng.standard_normal((V, dim)) * 0.1).astype(np.float32)
    b = np.full(V, -4.0, np.float32)
    x = rng.standard_normal((T, dim)).astype(np.float32)
    offsets = np.array([0, T], np.int64)
    for simd in MODES:
        indptr, indices, values, exact = _head.max_logits(_head.Head(w, b), x, offsets, 1, simd)
        assert exact < 0.01 * T * V
        np.testing.assert_allclose(dense(indptr, indices, values, 1, V), reference(w, b, x, offsets), atol=1e-4)


def test_bad_arguments_raise() -> None:
    w = np.ones((4, 3), np.float32)
    head = _head.Head(w, np.zeros(4, np.float32))
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="wrong dimension"):
        _head.max_logits(head, np.ones((2, 5), np.float32), np.array([0, 2], np.int64), 1, False)
    with pytest.raises(ValueError, match="start at 0 and end"):
        _head.max_logits(head, x, np.array([0, 3], np.int64), 1, False)
    with pytest.raises(ValueError, match="non-decreasing"):
        _head.max_logits(head, x, np.array([0, 2, 1, 2], np.int64), 1, False)
    with pytest.raises(TypeError):
        _head.max_logits(head, x.astype(np.float64), np.array([0, 2], np.int64), 1, False)
    with pytest.raises(ValueError, match="bias length"):
        _head.Head(w, np.zeros(3, np.float32))
    with pytest.raises(TypeError):
        _head.Head(w.astype(np.float64), np.zeros(4, np.float32))
    with pytest.raises(TypeError):
        _head.max_logits(head, np.asfortranarray(np.ones((2, 3), np.float32)), np.array([0, 2], np.int64), 1, False)
