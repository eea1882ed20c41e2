"""Vectors a caller gives, with a query or with documents, checked against the index's spec: once, here.

The engine encodes text itself; everything else a request can carry (a token map, term ids and weights, a dense
vector, documents with their vectors) is validated by these functions before it reaches an index.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from indexer import SparseBatch

from .live import IndexSpec
from .live.catalog import storable
from .query import NewDocument, Query, QueryError, vocabulary_mismatch

MAX_METADATA_DEPTH = 32  # nesting levels of a document's metadata object
MAX_METADATA_BYTES = 65_536  # its size as UTF-8 JSON


def check_ids(ids: Sequence[str]) -> None:
    """Document ids that can be stored and read back through every route: non-empty, not ``.`` or ``..`` (which
    URL normalisation turns into the index's own path), no control characters, no lone surrogates."""
    for i in ids:
        if not isinstance(i, str) or not i or i in (".", "..") or not storable(i):
            raise QueryError(f"document id {i!r} is not allowed: ids are non-empty UTF-8 text other than '.' and '..'")
        if any(ord(c) < 32 or ord(c) == 127 for c in i):
            raise QueryError(f"document id {i!r} holds a control character")


def check_metadata(doc_id: str, metadata: Any) -> None:
    """Metadata that reads back as it was written: a JSON object of at most ``MAX_METADATA_DEPTH`` levels and
    ``MAX_METADATA_BYTES`` bytes, with no lone surrogate in any key or string."""
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise QueryError(f"document {doc_id!r}: metadata must be a JSON object")
    stack = [(metadata, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_METADATA_DEPTH:
            raise QueryError(f"document {doc_id!r}: metadata nests deeper than {MAX_METADATA_DEPTH} levels")
        children = (
            list(value.items()) if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
        )
        for key, child in children:
            if isinstance(key, str) and not storable(key):
                raise QueryError(f"document {doc_id!r}: a metadata key is not valid UTF-8 (a lone surrogate)")
            if isinstance(child, str) and not storable(child):
                raise QueryError(f"document {doc_id!r}: a metadata value is not valid UTF-8 (a lone surrogate)")
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    size = len(json.dumps(metadata, ensure_ascii=False).encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        raise QueryError(f"document {doc_id!r}: metadata is {size} bytes as JSON, more than {MAX_METADATA_BYTES}")


def _term_ids(where: str, ids: Sequence[int], vocab_size: int) -> np.ndarray:
    """Term ids checked as Python integers first (no overflow on the way into numpy), in range and unique."""
    if any(not isinstance(t, int | np.integer) or isinstance(t, bool) or not 0 <= t < vocab_size for t in ids):
        raise QueryError(f"{where}: term ids must be integers in 0..{vocab_size - 1}")
    out = np.asarray(ids, dtype=np.int64).astype(np.uint32)
    if len(np.unique(out)) != len(out):
        raise QueryError(f"{where}: a term id appears more than once (give each term once, with its whole weight)")
    return out


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
        idx = _term_ids("the query", list(q.indices), spec.vocab_size)
        val = np.asarray(q.values, np.float64).astype(np.float32)
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
            rows.append(dict(zip(_term_ids(f"document {d.id!r}", list(d.indices), spec.vocab_size).tolist(), d.values)))
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
