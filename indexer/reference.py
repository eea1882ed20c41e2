"""The slow, obviously-correct twin of the native index (NumPy/SciPy only).

It applies the same documented arithmetic as the native core, step by step:

* a row's duplicate terms are summed in float64 in order of appearance, then
  rounded to float32; weights that are not > 0 are dropped;
* documents: ``scale = max_weight / 255`` and
  ``impact = clip(rint(w / scale), 1, 255)`` in float64;
* queries: with ``n`` distinct positive terms,
  ``Q = min(65535, (2**32 - 1) // (255 * n))`` and
  ``q = rint(w * Q / max_w)``; terms with ``q < 1`` are dropped;
* a document's score is the exact integer ``sum(q * impact)``; hits are the
  documents with a positive score, best first, ties to the smaller doc number;
  the float score is ``float32(int_score * (scale * max_w / Q))``.

Tests compare every native path with this module on random corpora.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from .csr import SparseBatch

MAX_IMPACT = 255


class RefHit(NamedTuple):
    doc: int
    int_score: int
    score: float


def quantize(weights: np.ndarray, scale: float) -> np.ndarray:
    """Document impacts: clip(rint(w / scale), 1, 255) in float64."""
    return np.clip(np.rint(weights.astype(np.float64) / scale), 1, MAX_IMPACT).astype(np.int64)


def quantize_query(indices: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """A query's integer weights: merged terms, Q = min(65535, floor((2^32 - 1) / (255 n))), rint(w Q / max w),
    those >= 1 kept; and max w / Q, which times the impact scale turns an integer score into the float one."""
    terms, weights = merge_terms(indices, values)
    if len(terms) == 0:
        raise ValueError("query has no term with a positive weight")
    w64 = weights.astype(np.float64)
    wmax = float(w64.max())
    Q = float(min(65535, (2**32 - 1) // (255 * len(terms))))
    q = np.rint(w64 * Q / wmax)
    keep = q >= 1
    return terms[keep], q[keep].astype(np.int64), wmax / Q


def merge_terms(indices: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum duplicate terms (float64, in order of appearance), round to float32, keep weights > 0."""
    sums: dict[int, float] = {}
    for t, w in zip(indices.tolist(), values.tolist()):
        sums[t] = sums.get(t, 0.0) + float(w)
    terms = sorted(t for t, w in sums.items() if np.float32(w) > 0)
    return np.asarray(terms, dtype=np.uint32), np.asarray([sums[t] for t in terms], dtype=np.float32)


class ReferenceIndex:
    def __init__(self, docs: SparseBatch, vocab_size: int) -> None:
        rows, cols, vals = [], [], []
        for i in range(docs.num_rows):
            terms, weights = merge_terms(*docs.row(i))
            rows.extend([i] * len(terms))
            cols.extend(terms.tolist())
            vals.extend(weights.tolist())
        self._set_matrix(
            docs.num_rows,
            vocab_size,
            np.asarray(rows, np.int64),
            np.asarray(cols, np.int64),
            np.asarray(vals, np.float32),
        )

    def _set_matrix(self, num_docs: int, vocab_size: int, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> None:
        """Float weights from (doc, term, weight) triples of merged rows, then their quantised impacts."""
        self.num_docs = num_docs
        self.vocab_size = vocab_size
        self.weights = sp.csc_matrix((vals, (rows, cols)), shape=(num_docs, vocab_size), dtype=np.float32)
        max_w = float(vals.max()) if vals.size else 0.0
        self.scale = max_w / MAX_IMPACT if max_w > 0 else 0.0
        self.impacts = self.weights.copy().astype(np.int64)
        if vals.size:
            self.impacts.data = quantize(self.weights.data, self.scale)

    def postings(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        col = self.impacts.getcol(term).tocoo()
        order = np.argsort(col.row)
        return col.row[order].astype(np.uint32), col.data[order].astype(np.uint8)

    def quantize_query(self, indices: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        terms, q, unit = quantize_query(indices, values)
        return terms, q, self.scale * unit

    def search(
        self, indices: np.ndarray, values: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> list[RefHit]:
        """Every document scored; hits are the positive ones (only those ``allowed``, a bool per document)."""
        terms, q, score_scale = self.quantize_query(indices, values)
        scores = np.zeros(self.num_docs, dtype=np.int64)
        if len(terms):
            scores = np.asarray(self.impacts[:, terms.astype(np.int64)] @ q).ravel()
        docs = np.flatnonzero((scores > 0) & (True if allowed is None else allowed))
        order = np.lexsort((docs, -scores[docs]))[:k]
        return [RefHit(int(d), int(scores[d]), float(np.float32(float(scores[d]) * score_scale))) for d in docs[order]]

    def search_float(self, indices: np.ndarray, values: np.ndarray, k: int) -> list[int]:
        """Top-k doc numbers by the unquantised float dot product (ties to the smaller doc)."""
        terms, weights = merge_terms(indices, values)
        scores = np.asarray(self.weights[:, terms.astype(np.int64)] @ weights.astype(np.float64)).ravel()
        docs = np.flatnonzero(scores > 0)
        order = np.lexsort((docs, -scores[docs]))[:k]
        return [int(d) for d in docs[order]]


def canonical_reference(docs: SparseBatch, vocab_size: int) -> ReferenceIndex:
    """A ReferenceIndex built without the per-row Python loop, for large corpora whose rows are
    already canonical (sorted unique term ids, positive weights), where merging changes nothing."""
    rows = np.repeat(np.arange(docs.num_rows), np.diff(docs.indptr.astype(np.int64)))
    if docs.nnz:
        same_row = rows[1:] == rows[:-1]
        if np.any(same_row & (docs.indices[1:] <= docs.indices[:-1])) or np.any(docs.values <= 0):
            raise ValueError("rows are not canonical (sorted unique terms, positive weights)")
    ref = ReferenceIndex.__new__(ReferenceIndex)
    ref._set_matrix(docs.num_rows, vocab_size, rows, docs.indices.astype(np.int64), docs.values)
    return ref
