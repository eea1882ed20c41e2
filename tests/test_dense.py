"""retrieval.dense.top_k against its slow twin: small-integer vectors (every product and sum exact in float32,
whatever the summation order), so ties are frequent and their order (lower row first) is checked exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrieval.dense import top_k, top_k_reference


@st.composite
def problems(draw):  # noqa: ANN001, ANN201
    docs = draw(st.integers(0, 60))
    dim = draw(st.integers(1, 6))
    queries = draw(st.integers(1, 70))  # past one query chunk sometimes
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    rows = rng.integers(-2, 3, size=(docs, dim)).astype(np.float32)
    qs = rng.integers(-2, 3, size=(queries, dim)).astype(np.float32)
    allowed = None if draw(st.booleans()) else rng.random(docs) < draw(st.floats(0.0, 1.0))
    return rows, qs, draw(st.integers(1, 70)), allowed


@settings(max_examples=200, deadline=None)
@given(problems())
def test_top_k_equals_the_reference(problem) -> None:  # noqa: ANN001
    rows, qs, k, allowed = problem
    got, want = top_k(rows, qs, k, allowed), top_k_reference(rows, qs, k, allowed)
    assert len(got) == len(want) == len(qs)
    for (gi, gs), (wi, ws) in zip(got, want):
        np.testing.assert_array_equal(gi, wi)
        np.testing.assert_array_equal(gs, ws)
        if allowed is not None:
            assert allowed[gi].all()


def test_top_k_refuses_mismatched_shapes() -> None:
    rows = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="same width"):
        top_k(rows, np.zeros((2, 2), np.float32), 1)
    with pytest.raises(ValueError, match="allowed"):
        top_k(rows, np.zeros((2, 3), np.float32), 1, np.ones(3, bool))
