"""Exact dense search: the best ``k`` rows of a document matrix by inner product with each query vector.

The one exact dense searcher, for the live index's segments and a built collection's flat index (an HNSW
collection is approximate and stays faiss's). Order is total: score descending, then row ascending, so a segment's
answer is the same whichever rows tie at the cut. ``top_k_reference`` is the slow, obviously-correct twin (a stable
sort of every score) that the tests compare it with.
"""

from __future__ import annotations

import numpy as np

QUERY_CHUNK = 64  # query rows scored at once: bounds the (queries x documents) score block


def top_k(
    rows: np.ndarray, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per row of ``queries`` (n, dim): (row ids int64, scores float32) of its best ``k`` rows of ``rows``
    (docs, dim) among ``allowed`` (a bool mask over the docs; None: all), best first, ties by lower row."""
    queries = np.asarray(queries, dtype=np.float32)
    if queries.ndim != 2 or rows.ndim != 2 or queries.shape[1] != rows.shape[1]:
        raise ValueError(f"queries {queries.shape} and rows {rows.shape} must be 2-D with the same width")
    if allowed is not None and allowed.shape != (rows.shape[0],):
        raise ValueError(f"allowed has shape {allowed.shape}, the matrix {rows.shape[0]} rows")
    pool = rows.shape[0] if allowed is None else int(allowed.sum())
    keep = min(k, pool)
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for lo in range(0, len(queries), QUERY_CHUNK):
        block = queries[lo : lo + QUERY_CHUNK] @ rows.T  # (chunk, docs) float32
        if allowed is not None:
            block[:, ~allowed] = -np.inf
        for s in block:
            out.append(_best(s, keep))
    return out


def _best(s: np.ndarray, keep: int) -> tuple[np.ndarray, np.ndarray]:
    if keep <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    if keep < len(s):
        cut = s[np.argpartition(-s, keep - 1)[:keep]].min()  # the k-th best score
        above = np.flatnonzero(s > cut)
        sel = np.concatenate([above, np.flatnonzero(s == cut)[: keep - len(above)]])  # ties at the cut: lower rows
    else:
        sel = np.arange(len(s))
    order = np.lexsort((sel, -s[sel]))
    sel = sel[order].astype(np.int64)
    return sel, s[sel]


def top_k_reference(
    rows: np.ndarray, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``top_k``'s slow twin: every score of every allowed row, one stable sort per query."""
    ids = np.arange(rows.shape[0]) if allowed is None else np.flatnonzero(allowed)
    out = []
    for q in np.asarray(queries, dtype=np.float32):
        s = np.array([np.float32(rows[i] @ q) for i in ids], dtype=np.float32)
        order = np.argsort(-s, kind="stable")[:k]
        out.append((ids[order].astype(np.int64), s[order]))
    return out
