"""Searching a built collection: sparse (our index), dense (faiss) or hybrid (fused).

A :class:`Searcher` holds an open collection and the query encoders; ``search`` takes query id ->
text and returns a run (query id -> doc id -> score) with the time each stage took.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from indexer import Index, SparseBatch

from .collection import COLLECTION, DENSE, SPARSE, IncompleteCollectionError, iter_shards
from .fusion import Fusion, Run, fuse

logger = logging.getLogger(__name__)

MODES = ("sparse", "dense", "hybrid", "exact")  # exact: brute-force float scoring, sparse's slow twin


@dataclass
class Collection:
    path: Path
    meta: dict
    sparse: Index
    dense: Any | None  # a faiss index, rows in the sparse index's doc order

    @classmethod
    def open(cls, folder: str | Path) -> Collection:
        folder = Path(folder)
        if not (folder / COLLECTION).exists():
            raise IncompleteCollectionError(f"{folder}: no {COLLECTION}; the collection was never completed")
        meta = json.loads((folder / COLLECTION).read_text())
        sparse = Index.open(folder / SPARSE)
        dense = None
        if (folder / DENSE).exists():
            import faiss

            dense = faiss.read_index(str(folder / DENSE))
            if dense.ntotal != sparse.num_docs:
                raise IncompleteCollectionError(f"{folder}: dense and sparse indexes disagree on the doc count")
        return cls(folder, meta, sparse, dense)

    @property
    def num_docs(self) -> int:
        return self.sparse.num_docs

    def float_matrix(self):  # noqa: ANN201 - scipy.sparse.csr_matrix
        """The documents' unquantised sparse vectors (docs x vocab), from the shards, in index order."""
        import scipy.sparse as sp

        rows = []
        for ids, batch, _ in iter_shards(self.path, self.meta["shards"]):
            rows.append(
                sp.csr_matrix(
                    (batch.values, batch.indices, batch.indptr.astype(np.int64)),
                    shape=(len(ids), self.sparse.vocab_size),
                )
            )
        return sp.vstack(rows, format="csr")


@dataclass
class Timings:
    encode_s: float = 0.0
    search_s: float = 0.0
    per_query_ms: list[float] = field(default_factory=list)
    query_nnz: float = 0.0


class Searcher:
    def __init__(self, collection: Collection, sparse_encoder: Any, dense_encoder: Any | None = None) -> None:
        collection.sparse.check_vocab(sparse_encoder.vocab_hash)
        self.collection = collection
        self.sparse_encoder = sparse_encoder
        self.dense_encoder = dense_encoder
        self._matrix = None  # the float document matrix, loaded on the first exact search

    def search(
        self,
        queries: dict[str, str],
        mode: str = "sparse",
        k: int = 1000,
        fusion: Fusion | None = None,
        threads: int = 1,
    ) -> tuple[Run, Timings]:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        t = Timings()
        if mode == "sparse":
            return self.sparse(queries, k, t, threads), t
        if mode == "dense":
            return self.dense(queries, k, t), t
        if mode == "exact":
            return self.exact(queries, k, t), t
        ts, td = Timings(), Timings()
        runs = [self.sparse(queries, k, ts, threads), self.dense(queries, k, td)]
        t0 = time.perf_counter()
        fused = fuse(runs, fusion or Fusion(), k)
        fuse_ms = (time.perf_counter() - t0) * 1000 / max(len(queries), 1)
        t.encode_s, t.search_s, t.query_nnz = ts.encode_s + td.encode_s, ts.search_s + td.search_s, ts.query_nnz
        t.per_query_ms = [a + b + fuse_ms for a, b in zip(ts.per_query_ms, td.per_query_ms)]
        return fused, t

    def sparse(self, queries: dict[str, str], k: int, t: Timings, threads: int = 1) -> Run:
        qids = list(queries)
        t0 = time.perf_counter()
        qb = self.sparse_encoder.encode_queries([queries[q] for q in qids])
        t.encode_s += time.perf_counter() - t0
        t.query_nnz = qb.nnz / max(qb.num_rows, 1)
        index = self.collection.sparse
        run: Run = {q: {} for q in qids}
        for i, q in enumerate(qids):  # one at a time: per-query latency is part of the report
            idx, val = qb.row(i)
            if len(idx) == 0:
                t.per_query_ms.append(0.0)
                continue
            t1 = time.perf_counter()
            res = index.search_batch(SparseBatch(np.array([0, len(idx)], np.uint64), idx, val), k=k, threads=threads)
            dt = time.perf_counter() - t1
            t.search_s += dt
            t.per_query_ms.append(dt * 1000)
            run[q] = {h.doc_id: h.score for h in index.hits(res, 0)}
        return run

    def dense(self, queries: dict[str, str], k: int, t: Timings) -> Run:
        if self.collection.dense is None or self.dense_encoder is None:
            raise ValueError(f"{self.collection.path} has no dense index (or no dense encoder was given)")
        qids = list(queries)
        t0 = time.perf_counter()
        emb = np.ascontiguousarray(self.dense_encoder.encode_queries([queries[q] for q in qids]), dtype=np.float32)
        t.encode_s += time.perf_counter() - t0
        lex = self.collection.sparse.lexicon
        run: Run = {}
        for i, q in enumerate(qids):  # one at a time, as for sparse: per-query latency
            t1 = time.perf_counter()
            scores, docs = self.collection.dense.search(emb[i : i + 1], min(k, self.collection.num_docs))
            dt = time.perf_counter() - t1
            t.search_s += dt
            t.per_query_ms.append(dt * 1000)
            run[q] = {lex[int(d)]: float(s) for d, s in zip(docs[0], scores[0]) if d >= 0}
        return run

    def exact(self, queries: dict[str, str], k: int, t: Timings) -> Run:
        """Every document scored in float64 from its float32 vector (no quantisation, no index)."""
        import scipy.sparse as sp

        if self._matrix is None:
            self._matrix = self.collection.float_matrix().T.tocsr().astype(np.float64)
        qids = list(queries)
        t0 = time.perf_counter()
        qb = self.sparse_encoder.encode_queries([queries[q] for q in qids])
        t.encode_s += time.perf_counter() - t0
        t.query_nnz = qb.nnz / max(qb.num_rows, 1)
        q = sp.csr_matrix((qb.values, qb.indices, qb.indptr.astype(np.int64)), shape=(len(qids), self._matrix.shape[0]))
        lex = self.collection.sparse.lexicon
        run: Run = {}
        t1 = time.perf_counter()
        for lo in range(0, len(qids), 256):
            scores = (q[lo : lo + 256].astype(np.float64) @ self._matrix).toarray()
            for i, row in enumerate(scores):
                hit = np.flatnonzero(row > 0)
                top = hit[np.lexsort((hit, -row[hit]))][:k]
                run[qids[lo + i]] = {lex[int(d)]: float(row[d]) for d in top}
        t.search_s += time.perf_counter() - t1
        return run
