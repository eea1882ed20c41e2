from __future__ import annotations

import os

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from indexer import SparseBatch

# One pytest process runs the JVM (pyserini: test_export, test_regression_scifact) and Ray. Ray's driver installs
# absl's failure signal handler over the JVM's SIGSEGV handler, and the JVM raises SIGSEGV on purpose (implicit
# null checks, safepoints): the next Lucene run after a Ray test then kills the process (reproduced: test_export,
# then test_live_ray, then test_regression_scifact). Processes of the product use one or the other.
os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")

settings.register_profile("default", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def random_batch(rng: np.random.Generator, nrows: int, vocab: int, max_nnz: int, zero_rate: float = 0.1) -> SparseBatch:
    """Rows with duplicate terms, exact zeros, empty rows and heavy-tailed weights."""
    lengths = rng.integers(0, max_nnz + 1, size=nrows)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.uint64)
    nnz = int(indptr[-1])
    # skewed term distribution: a few terms get very long lists
    indices = np.minimum(rng.zipf(1.3, size=nnz) - 1, vocab - 1).astype(np.uint32)
    values = rng.lognormal(mean=-0.5, sigma=1.0, size=nnz).astype(np.float32)
    values[rng.random(nnz) < zero_rate] = 0.0
    return SparseBatch(indptr, indices, values)


@st.composite
def corpora(draw, max_docs: int = 300, max_vocab: int = 64, max_nnz: int = 20):
    seed = draw(st.integers(0, 2**32 - 1))
    nrows = draw(st.integers(1, max_docs))
    vocab = draw(st.integers(1, max_vocab))
    nnz = draw(st.integers(0, max_nnz))
    return np.random.default_rng(seed), nrows, vocab, nnz
