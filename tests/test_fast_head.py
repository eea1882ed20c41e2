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


def identity(dim: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(dim, np.float32), np.eye(dim)


def random_basis(rng: np.random.Generator, dim: int, keep: int) -> tuple[np.ndarray, np.ndarray]:
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    return rng.normal(0, 2, dim).astype(np.float32), np.ascontiguousarray(q[:, :keep].T)


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
    keep=st.floats(0, 1),
)
def test_matches_float64_reference(
    seed: int, V: int, dim: int, counts: list[int], scale: float, threads: int, keep: float
) -> None:
    """Any centre and any orthonormal basis (0 to dim rows) give the float64 answer, bit-identical across bases."""
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((V, dim)) * rng.choice([0.1, 1.0], size=(V, 1))).astype(np.float32)
    b = rng.normal(-1.0, 1.0, V).astype(np.float32)
    x = (rng.standard_normal((sum(counts), dim)) * scale).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = 0.0  # exact zeros, and all-zero rows now and then
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    want = reference(w, b, x, offsets)
    heads = [_head.Head(w, b, *identity(dim)), _head.Head(w, b, *random_basis(rng, dim, round(keep * dim)))]
    first: dict[bool, tuple] = {}
    for head, simd in [(h, m) for h in heads for m in MODES]:
        indptr, indices, values, exact = _head.max_logits(head, x, offsets, threads, simd)
        assert indices.dtype == np.uint32 and values.dtype == np.float32 and indptr.dtype == np.uint64
        assert (values > 0).all()
        got = dense(indptr, indices, values, len(counts), V)
        tol = 1e-5 * (1 + np.abs(x).max(initial=0) * np.abs(w).max() * dim)
        np.testing.assert_allclose(got, want, atol=tol, rtol=1e-5)
        clear = np.abs(want) > tol  # the support agrees wherever the true max is not within rounding of 0
        assert ((got > 0) == (want > 0))[clear].all()
        assert exact <= sum(counts) * V
        # per kernel, the recompute is the same float32 dot product whichever screen let it through
        for a, c in zip(first.setdefault(simd, (indptr, indices, values)), (indptr, indices, values)):
            np.testing.assert_array_equal(a, c)


def test_screen_skips_most_of_the_work() -> None:
    """With realistic logits (mostly negative) the float32 recompute touches few (token, entry) pairs."""
    rng = np.random.default_rng(0)
    V, dim, T = 3000, 64, 200
    w = (rng.standard_normal((V, dim)) * 0.1).astype(np.float32)
    b = np.full(V, -4.0, np.float32)
    x = rng.standard_normal((T, dim)).astype(np.float32)
    offsets = np.array([0, T], np.int64)
    for simd in MODES:
        indptr, indices, values, exact = _head.max_logits(_head.Head(w, b, *identity(dim)), x, offsets, 1, simd)
        assert exact < 0.01 * T * V
        np.testing.assert_allclose(dense(indptr, indices, values, 1, V), reference(w, b, x, offsets), atol=1e-4)


def test_bad_arguments_raise() -> None:
    w = np.ones((4, 3), np.float32)
    head = _head.Head(w, np.zeros(4, np.float32), *identity(3))
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
        _head.Head(w, np.zeros(3, np.float32), *identity(3))
    with pytest.raises(TypeError):
        _head.Head(w.astype(np.float64), np.zeros(4, np.float32), *identity(3))
    with pytest.raises(ValueError, match="orthonormal"):
        _head.Head(w, np.zeros(4, np.float32), np.zeros(3, np.float32), np.eye(3) * 1.001)
    with pytest.raises(ValueError, match="more rows"):
        _head.Head(w, np.zeros(4, np.float32), np.zeros(3, np.float32), np.ones((4, 3)))
    with pytest.raises(ValueError, match="center"):
        _head.Head(w, np.zeros(4, np.float32), np.zeros(2, np.float32), np.eye(3))
    with pytest.raises(TypeError):
        _head.Head(w, np.zeros(4, np.float32), np.zeros(3, np.float32), np.eye(3, dtype=np.float32))
    with pytest.raises(TypeError):
        _head.max_logits(head, np.asfortranarray(np.ones((2, 3), np.float32)), np.array([0, 2], np.int64), 1, False)


def test_fitted_screen_is_exact_and_cheaper() -> None:
    """Tokens with a strong mean and few directions (as a transformer's are): the fitted centre and basis
    screen on fewer dimensions, recompute little, and give the same bits as the full-dimension screen."""
    from lsr.fast_head import screen_basis

    rng = np.random.default_rng(1)
    V, dim, T = 2000, 64, 3000
    mix = rng.standard_normal((12, dim))
    x = (rng.standard_normal((T, 12)) @ mix + 5.0 + 0.05 * rng.standard_normal((T, dim))).astype(np.float32)
    w = (rng.standard_normal((V, dim)) * 0.02).astype(np.float32)
    b = np.full(V, -4.0, np.float32)
    offsets = np.arange(0, T + 1, 100, dtype=np.int64)
    center, basis = screen_basis(x)
    assert 12 <= len(basis) < dim and len(basis) % 4 == 0
    want = reference(w, b, x, offsets)
    for simd in MODES:
        full = _head.max_logits(_head.Head(w, b, *identity(dim)), x, offsets, 2, simd)
        fitted = _head.max_logits(_head.Head(w, b, center, basis), x, offsets, 2, simd)
        for a, c in zip(full[:3], fitted[:3]):
            np.testing.assert_array_equal(a, c)
        np.testing.assert_allclose(dense(*fitted[:3], len(offsets) - 1, V), want, atol=1e-4)
        assert fitted[3] < 0.01 * T * V, (fitted[3], full[3])


def test_fast_head_fits_on_the_first_large_call_and_stays_exact() -> None:
    """FastHead screens on all dimensions until a call brings CALIBRATION_TOKENS tokens, then on the
    fitted subspace; both give the float64 answer. A fit that keeps every dimension reuses the head."""
    torch = pytest.importorskip("torch")
    from lsr import fast_head

    if not fast_head.available():
        pytest.skip("no AVX-512 VNNI here")
    rng = np.random.default_rng(2)
    V, dim = 500, 32
    mix = rng.standard_normal((6, dim))
    w = torch.from_numpy((rng.standard_normal((V, dim)) * 0.05).astype(np.float32))
    b = torch.full((V,), -2.0)

    def tokens(n: int, low_rank: bool) -> np.ndarray:
        base = rng.standard_normal((n, 6)) @ mix if low_rank else rng.standard_normal((n, dim)) * 2
        return (base + 3.0).astype(np.float32)

    def check(fh: fast_head.FastHead, x: np.ndarray, per_text: int) -> None:
        counts = torch.full((len(x) // per_text,), per_text)
        got = fh.max_weights(torch.from_numpy(x), counts, w, b, 2)
        offsets = np.arange(0, len(x) + 1, per_text, dtype=np.int64)
        want = np.log1p(reference(w.numpy(), b.numpy(), x, offsets))  # reference() is max(0, max logit)
        np.testing.assert_allclose(got.numpy(), want, atol=1e-4)

    fh = fast_head.FastHead()
    check(fh, tokens(40, True), 10)  # too few tokens to fit
    first = fh._head
    assert first.screen_dim == dim
    check(fh, tokens(fast_head.CALIBRATION_TOKENS, True), 64)
    assert fh._head is not first and fh._head.screen_dim < dim
    fitted = fh._head
    check(fh, tokens(100, True), 10)
    assert fh._head is fitted

    full = fast_head.FastHead()  # isotropic tokens: the fit keeps every dimension
    check(full, tokens(40, False), 10)
    first = full._head
    check(full, tokens(fast_head.CALIBRATION_TOKENS, False), 64)
    assert full._head is first


@pytest.mark.parametrize("workers", [1, 2, 5])
def test_an_exception_in_a_worker_thread_reaches_python(workers: int) -> None:
    """The pool max_logits runs on: a worker that throws becomes a RuntimeError (it used to end the process
    through std::terminate); the other workers still finish."""
    assert _head.testing.run_workers(workers, workers + 1) == workers  # no failing worker: all ran
    for failing in range(workers):
        with pytest.raises(RuntimeError, match=f"worker {failing} failed"):
            _head.testing.run_workers(workers, failing)


def test_arguments_are_never_converted() -> None:
    w, b = np.ones((4, 3), np.float32), np.zeros(4, np.float32)
    head = _head.Head(w, b, *identity(3))
    x, offsets = np.ones((2, 3), np.float32), np.array([0, 2], np.int64)
    assert _head.max_logits(head, x, offsets, 1, False)[0].tolist() == [0, 4]
    for bad in ((head, x.astype(np.float64), offsets, 1, False), (head, x, offsets.astype(np.int32), 1, False),
                (head, x, offsets, 1.0, False), (head, x, offsets, np.int64(1), False)):  # fmt: skip
        with pytest.raises(TypeError):
            _head.max_logits(*bad)
