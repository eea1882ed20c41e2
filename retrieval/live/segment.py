"""One immutable segment of a live index: our inverted index over its rows and its vector file."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from indexer import Index, SparseBatch

from ..vectors import read_vectors

VECTORS = "vectors.safetensors"


class Segment:
    """One immutable segment and the liveness of its rows (changed under the index's lock).
    Its files are memory-mapped, so a segment stays readable after a merge unlinks them."""

    def __init__(self, seq: int, path: Path, live_rows: np.ndarray) -> None:
        self.seq = seq
        self.path = path
        self.sparse = Index.open(path / "sparse")
        _, vectors, self.dense = read_vectors(path / VECTORS)
        self.indptr, self.indices, self.values = vectors
        if len(self.indptr) != self.sparse.num_docs + 1:
            raise ValueError(f"{path}: {len(self.indptr) - 1} vectors for {self.sparse.num_docs} documents")
        self._set_live(live_rows)
        self.columns = None  # its metadata index (retrieval.filters.MetadataColumns), built on first use

    def with_live(self, live_rows: np.ndarray) -> Segment:
        """The same segment (its memory-mapped files and metadata index shared) with other live rows: what a read
        replica (LiveReader) makes of a segment it holds when the catalog changed."""
        seg = copy.copy(self)
        seg._set_live(live_rows)
        return seg

    def _set_live(self, live_rows: np.ndarray) -> None:
        self.live = np.zeros(self.sparse.num_docs, dtype=bool)
        self.live[live_rows] = True
        self.dead = int(self.sparse.num_docs - self.live.sum())

    @property
    def rows(self) -> int:
        return self.sparse.num_docs

    def kill(self, row: int) -> None:
        if self.live[row]:
            self.live[row] = False
            self.dead += 1

    def vector(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """The float sparse vector of one row."""
        lo, hi = int(self.indptr[row]), int(self.indptr[row + 1])
        return self.indices[lo:hi], self.values[lo:hi]

    def live_vectors(self) -> tuple[list[str], SparseBatch, np.ndarray | None]:
        """Ids, float sparse rows and dense rows of the live rows, in row order."""
        live = self.live.copy()  # a write may kill rows meanwhile; the merge commit re-checks them
        rows = np.flatnonzero(live)
        ids = [self.sparse.lexicon[int(r)] for r in rows]
        lengths = np.diff(self.indptr.astype(np.int64))
        keep = np.repeat(live, lengths)
        batch = SparseBatch(
            np.concatenate([[0], np.cumsum(lengths[rows])]).astype(np.uint64),
            self.indices[keep],
            self.values[keep],
        )
        return ids, batch, None if self.dense is None else self.dense[rows]


def seg_name(seq: int) -> str:
    return f"seg-{seq:06d}"
