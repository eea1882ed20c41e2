"""Vectors a caller gives, with a query or with documents, checked against the index's spec: once, here.

The engine encodes text itself; everything else a request can carry (a token map, term ids and weights, a dense
vector, documents with their vectors) is validated by these functions before it reaches an index.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from indexer import SparseBatch

from .live import IndexSpec
from .query import NewDocument, Query, QueryError, vocabulary_mismatch


def check_sparse_query(name: str, spec: IndexSpec, q: Query) -> None:
    """The query names the index's vocabulary (if it names one) and gives exactly one sparse form."""
    if q.vocab_hash is not None and q.vocab_hash != spec.vocab_hash:
        raise QueryError(vocabulary_mismatch(name, spec.vocab_hash, q.vocab_hash))
    given = [x is not None for x in (q.text, q.terms, q.indices)]
    if sum(given) != 1:
        raise QueryError("give exactly one of text, terms, or indices + values")


def sparse_query(spec: IndexSpec, q: Query, tokenizer: Callable[[], Any]) -> tuple[np.ndarray, np.ndarray]:
    """A query given as tokens (``tokenizer()``, called only then, maps them to ids) or as term ids."""
    if q.terms is not None:
        tok = tokenizer()
        ids = tok.convert_tokens_to_ids(list(q.terms))
        unknown = [t for t, i in zip(q.terms, ids) if i is None or i == tok.unk_token_id]
        if unknown:
            raise QueryError(f"tokens not in the {spec.sparse_model} vocabulary: {unknown[:5]}")
        idx, val = np.array(ids, np.uint32), np.array(list(q.terms.values()), np.float32)
    else:
        if q.values is None or len(q.values) != len(q.indices):
            raise QueryError("indices and values must have the same length")
        idx, val = np.asarray(q.indices, np.int64), np.asarray(q.values, np.float64)
        if len(idx) and (idx.min() < 0 or idx.max() >= spec.vocab_size):
            raise QueryError(f"term ids must be in 0..{spec.vocab_size - 1}")
        idx, val = idx.astype(np.uint32), val.astype(np.float32)
    if not np.isfinite(val).all() or (val < 0).any():
        raise QueryError("weights must be finite and non-negative")
    return idx, val


def has_dense_query(name: str, spec: IndexSpec, q: Query) -> bool:
    """Whether the query brings its own dense vector (checked); else it must have text to encode."""
    if spec.dense_dim is None:
        raise QueryError(f"index {name!r} has no dense vectors")
    if q.dense is not None:
        v = np.asarray(q.dense, np.float32)
        if v.shape != (spec.dense_dim,) or not np.isfinite(v).all():
            raise QueryError(f"the dense vector must hold {spec.dense_dim} finite numbers")
        return True
    if q.text is None:
        raise QueryError("dense and hybrid search need the query text or a dense vector")
    return False


def document_vectors(
    name: str, spec: IndexSpec, docs: Sequence[NewDocument], vocab_hash: str | None = None
) -> tuple[SparseBatch | None, np.ndarray | None]:
    """The vectors documents carry (None: encode their texts): either every one carries its sparse vector (and
    its dense one when the index has dense vectors) or none does."""
    ids = [d.id for d in docs]
    if len(set(ids)) != len(ids):
        raise QueryError("document ids must be unique within a call")
    with_vectors = [d.indices is not None for d in docs]
    if any(with_vectors) and not all(with_vectors):
        raise QueryError("either every document carries a sparse vector or none does")
    if vocab_hash is not None and vocab_hash != spec.vocab_hash:
        raise QueryError(vocabulary_mismatch(name, spec.vocab_hash, vocab_hash))
    sparse = dense = None
    if docs and all(with_vectors):
        rows = []
        for d in docs:
            if d.values is None or len(d.indices) != len(d.values):
                raise QueryError(f"document {d.id!r}: indices and values differ in length")
            rows.append(dict(zip(d.indices, d.values)))
            if any(not 0 <= t < spec.vocab_size for t in d.indices):
                raise QueryError(f"document {d.id!r}: term ids must be in 0..{spec.vocab_size - 1}")
        sparse = SparseBatch.from_rows(rows)
        given_dense = [d.dense is not None for d in docs]
        if spec.dense_dim is not None and all(given_dense):
            dense = np.array([d.dense for d in docs], dtype=np.float32)
            if dense.shape[1:] != (spec.dense_dim,):
                raise QueryError(f"dense vectors must have {spec.dense_dim} numbers")
        elif any(given_dense) and spec.dense_dim is None:
            raise QueryError(f"index {name!r} has no dense vectors")
    elif any(d.text is None for d in docs):
        raise QueryError("documents without vectors need a text")
    return sparse, dense
