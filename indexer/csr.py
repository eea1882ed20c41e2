"""Sparse batches in CSR form and their validation.

A :class:`SparseBatch` is the only shape in which vectors reach the native
core: ``indptr`` (uint64, ``nrows + 1``), ``indices`` (uint32 term ids) and
``values`` (float32 weights). Term ids and weights are never converted
silently: other dtypes are refused with a message that says how to cast.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

import numpy as np

__all__ = ["SparseBatch", "prune_terms"]


def prune_terms(
    indices: np.ndarray, values: np.ndarray, max_terms: int | None = None, mass: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Query term pruning, an approximate search knob: the heaviest terms of one sparse vector, at most
    ``max_terms`` of them and only as many as it takes to reach ``mass`` (a fraction in (0, 1]) of the vector's
    total weight. Ties are broken by the lower term id; the kept terms stay in their original order. With neither
    limit (or an empty vector) the vector is returned as it is."""
    if max_terms is not None and max_terms < 1:
        raise ValueError(f"max_terms must be at least 1, not {max_terms}")
    if mass is not None and not 0.0 < mass <= 1.0:
        raise ValueError(f"mass must be in (0, 1], not {mass}")
    n = len(indices)
    if n == 0 or (max_terms is None and mass is None):
        return indices, values
    order = np.lexsort((indices, -values.astype(np.float64)))  # heaviest first, then lower term id
    keep = n if max_terms is None else min(n, max_terms)
    if mass is not None:
        total = float(values.astype(np.float64).sum())
        if total > 0:
            reached = np.cumsum(values[order].astype(np.float64)) >= mass * total * (1 - 1e-12)
            keep = min(keep, int(np.argmax(reached)) + 1)
    chosen = np.sort(order[:keep])
    return indices[chosen], values[chosen]


def prune_rows(batch: SparseBatch, max_terms: int | None = None, mass: float | None = None) -> SparseBatch:
    """``prune_terms`` on every row of ``batch``: static (document-side) pruning, an approximate knob applied
    when an index is built. Rows stay in order; a row may become shorter, never empty unless it was."""
    if max_terms is None and mass is None:
        return batch
    prune_terms(batch.indices[:0], batch.values[:0], max_terms, mass)  # the limits' checks, once
    indptr = [0]
    kept_i, kept_v = [], []
    for r in range(batch.num_rows):
        lo, hi = int(batch.indptr[r]), int(batch.indptr[r + 1])
        i, v = prune_terms(batch.indices[lo:hi], batch.values[lo:hi], max_terms, mass)
        kept_i.append(i)
        kept_v.append(v)
        indptr.append(indptr[-1] + len(i))
    return SparseBatch(
        np.asarray(indptr, dtype=np.uint64),
        np.concatenate(kept_i) if kept_i else batch.indices[:0],
        np.concatenate(kept_v) if kept_v else batch.values[:0],
    )


class SparseBatch(NamedTuple):
    """Rows of sparse vectors: row ``i`` is ``indices[indptr[i]:indptr[i+1]]`` with ``values``."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray

    @property
    def num_rows(self) -> int:
        return int(self.indptr.shape[0]) - 1

    @property
    def nnz(self) -> int:
        return int(self.indices.shape[0])

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = int(self.indptr[i]), int(self.indptr[i + 1])
        return self.indices[lo:hi], self.values[lo:hi]

    def to_scipy(self, num_cols: int):  # noqa: ANN201 - scipy.sparse.csr_matrix
        """The rows as a SciPy CSR matrix (num_rows x num_cols), sharing the arrays where SciPy can."""
        from scipy.sparse import csr_matrix

        return csr_matrix((self.values, self.indices, self.indptr.astype(np.int64)), shape=(self.num_rows, num_cols))

    def nonempty(self) -> tuple[list[int], SparseBatch]:
        """The rows that have entries, and the batch of just those (this batch itself when every row has some):
        what a search can send to ``Index.search_batch``, which refuses empty queries."""
        rows = np.flatnonzero(np.diff(self.indptr.astype(np.int64)) > 0).tolist()
        return rows, self if len(rows) == self.num_rows else self.take(rows)

    def pruned(self, max_terms: int | None = None, mass: float | None = None) -> SparseBatch:
        """Every row through :func:`prune_terms` (this batch itself when there is nothing to prune)."""
        if max_terms is None and mass is None:
            return self
        rows = [prune_terms(*self.row(i), max_terms, mass) for i in range(self.num_rows)]
        indptr = np.zeros(len(rows) + 1, dtype=self.indptr.dtype)
        indptr[1:] = np.cumsum([len(t) for t, _ in rows])
        if not rows:
            return self
        return SparseBatch(indptr, np.concatenate([t for t, _ in rows]), np.concatenate([w for _, w in rows]))

    def take(self, rows: Iterable[int]) -> SparseBatch:
        """The given rows, in the given order (dtypes kept)."""
        parts = [self.row(int(i)) for i in rows]
        indptr = np.zeros(len(parts) + 1, dtype=self.indptr.dtype)
        indptr[1:] = np.cumsum([len(t) for t, _ in parts])
        if not parts:
            return SparseBatch(indptr, self.indices[:0], self.values[:0])
        return SparseBatch(indptr, np.concatenate([t for t, _ in parts]), np.concatenate([w for _, w in parts]))

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[int, float] | tuple[Iterable[int], Iterable[float]]]) -> SparseBatch:
        """Build from ``{term: weight}`` mappings or ``(indices, values)`` pairs (converted explicitly)."""
        indptr = [0]
        idx: list[int] = []
        val: list[float] = []
        for row in rows:
            if isinstance(row, Mapping):
                terms, weights = list(row.keys()), list(row.values())
            else:
                terms, weights = list(row[0]), list(row[1])
                if len(terms) != len(weights):
                    raise ValueError(f"row {len(indptr) - 1}: {len(terms)} indices but {len(weights)} values")
            for t in terms:
                if not isinstance(t, (int, np.integer)) or t < 0 or t > 0xFFFFFFFF:
                    raise ValueError(f"row {len(indptr) - 1}: term id {t!r} is not a uint32")
            idx.extend(int(t) for t in terms)
            val.extend(float(w) for w in weights)
            indptr.append(len(idx))
        return cls(
            np.asarray(indptr, dtype=np.uint64),
            np.asarray(idx, dtype=np.uint32),
            np.asarray(val, dtype=np.float32),
        )

    @classmethod
    def concat(cls, batches: Iterable[SparseBatch]) -> SparseBatch:
        """Rows of the batches one after another (dtypes kept; validate the result as usual)."""
        indptr, idx, val, base = [np.zeros(1, np.uint64)], [], [], 0
        for b in batches:
            lo, hi = int(b.indptr[0]), int(b.indptr[-1])
            indptr.append(np.asarray(b.indptr[1:], dtype=np.uint64) - np.uint64(lo) + np.uint64(base))
            idx.append(b.indices[lo:hi])
            val.append(b.values[lo:hi])
            base += hi - lo
        if not idx:
            return cls(indptr[0], np.zeros(0, np.uint32), np.zeros(0, np.float32))
        return cls(np.concatenate(indptr), np.concatenate(idx), np.concatenate(val))

    @classmethod
    def from_scipy(cls, matrix) -> SparseBatch:  # noqa: ANN001 - scipy is optional at type level
        """From a ``scipy.sparse`` matrix (CSR or convertible); index dtype converted after a range check."""
        csr = matrix.tocsr()
        indices = np.asarray(csr.indices)
        if indices.size and (indices.min() < 0 or indices.max() > 0xFFFFFFFF):
            raise ValueError("term ids do not fit in uint32")
        data = np.asarray(csr.data)
        if data.dtype != np.float32:
            raise TypeError(f"values must be float32, got {data.dtype}; cast the matrix with .astype(np.float32)")
        return cls(np.asarray(csr.indptr, dtype=np.uint64), indices.astype(np.uint32), data)

    def validated(self, vocab_size: int, *, what: str = "batch", allow_empty_rows: bool = True) -> SparseBatch:
        """Check every invariant the native core relies on; return C-contiguous arrays.

        Raises ``TypeError`` for wrong dtypes and ``ValueError`` (naming the row) for
        shapes, out-of-range term ids, NaN/inf/negative weights and, when
        ``allow_empty_rows`` is false, rows without a positive weight.
        """
        indptr, indices, values = self
        for name, arr in (("indptr", indptr), ("indices", indices), ("values", values)):
            if not isinstance(arr, np.ndarray):
                raise TypeError(f"{what}: {name} must be a numpy array, got {type(arr).__name__}")
            if arr.ndim != 1:
                raise ValueError(f"{what}: {name} must be 1-D, got shape {arr.shape}")
        if indices.dtype != np.uint32:
            raise TypeError(
                f"{what}: indices must be uint32, got {indices.dtype}; check the range and cast with .astype(np.uint32)"
            )
        if values.dtype != np.float32:
            raise TypeError(f"{what}: values must be float32, got {values.dtype}; cast with .astype(np.float32)")
        if not np.issubdtype(indptr.dtype, np.integer):
            raise TypeError(f"{what}: indptr must be an integer array, got {indptr.dtype}")
        if indptr.shape[0] < 1:
            raise ValueError(f"{what}: indptr must have nrows + 1 >= 1 entries")
        if indices.shape[0] != values.shape[0]:
            raise ValueError(f"{what}: {indices.shape[0]} indices but {values.shape[0]} values")
        nrows = indptr.shape[0] - 1
        first, last = int(indptr[0]), int(indptr[-1])
        if first != 0:
            raise ValueError(f"{what}: indptr[0] must be 0, got {first}")
        if nrows > 1 and np.any(np.diff(indptr.astype(np.int64)) < 0):
            raise ValueError(f"{what}: indptr must be non-decreasing")
        if last != indices.shape[0]:
            raise ValueError(f"{what}: indptr[-1] = {last} but there are {indices.shape[0]} non-zeros")
        indptr64 = indptr if indptr.dtype == np.uint64 else indptr.astype(np.uint64)
        if indices.size:
            if int(indices.max()) >= vocab_size:
                bad = int(np.argmax(indices >= vocab_size))
                row = int(np.searchsorted(indptr64, bad, side="right") - 1)
                raise ValueError(f"{what}: row {row} has term id {int(indices[bad])} >= vocab_size {vocab_size}")
            # min >= 0 is False for NaN; max < inf rules out +inf
            if not (values.min() >= 0 and values.max() < np.inf):
                bad = int(np.argmax(~np.isfinite(values) | (values < 0)))
                row = int(np.searchsorted(indptr64, bad, side="right") - 1)
                raise ValueError(f"{what}: row {row} has weight {float(values[bad])}; weights must be finite and >= 0")
        if not allow_empty_rows:
            if nrows == 1:
                empty = np.zeros(0 if (values > 0).any() else 1, dtype=np.int64)
            else:
                positive = np.concatenate([[0], np.cumsum(values > 0)])
                per_row = positive[indptr64[1:].astype(np.int64)] - positive[indptr64[:-1].astype(np.int64)]
                empty = np.flatnonzero(per_row == 0)
            if empty.size:
                shown = ", ".join(str(int(r)) for r in empty[:10])
                raise ValueError(f"{what}: row(s) {shown} have no term with a positive weight (empty query)")
        # no copies for arrays that are already contiguous
        return SparseBatch(np.ascontiguousarray(indptr64), np.ascontiguousarray(indices), np.ascontiguousarray(values))
