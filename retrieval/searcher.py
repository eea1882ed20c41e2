"""The one query path: encoded queries -> hits, over any index that implements ``Source``.

``search_vectors`` does the mode dispatch (sparse, dense, hybrid) and the fusion, once, for every caller: the
service's engine (over a live index), and ``Searcher`` (over a built collection: ``lsr search``, ``lsr eval``, the
main job), which encodes the queries' texts, times each query and adds ``exact``, the brute-force slow twin of the
sparse index. Both kinds of index implement ``Source``: a batch of sparse queries and a batch of dense vectors in,
each query's top ``k`` (doc id, score) out.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from indexer import Index, SparseBatch

from .collection import (
    COLLECTION,
    DENSE,
    IVFPQ_K_FACTOR,
    IVFPQ_NPROBE,
    SPARSE,
    IncompleteCollectionError,
    iter_shards,
    read_shard,
    shard_path,
)
from .dense import top_k as dense_top_k
from .filters import MetadataColumns, Node
from .filters import parse as parse_filter
from .fusion import Fusion, Run, fuse
from .query import Pruning
from .vectors import read_metadata

logger = logging.getLogger(__name__)

FUSION_DEPTH = 100  # hybrid fuses each list searched this deep (or k, when deeper): a score does not depend on k
MODES = ("sparse", "dense", "hybrid", "exact")  # exact: brute-force float scoring, sparse's slow twin
INDEX_MODES = ("sparse", "dense", "hybrid")  # what search_vectors runs over any Source
Hits = list[tuple[str, float]]


class Source(Protocol):
    """An index the query path can search: the built collection (``Collection``) and the live index
    (``retrieval.live.LiveIndex``)."""

    def search_sparse_batch(
        self, queries: SparseBatch, k: int, threads: int = 1, filter: Node | None = None, algorithm: str | None = None
    ) -> list[tuple[Hits, int]]:
        """Per query row: its top ``k`` among the documents matching ``filter`` (best first) and the postings
        scored, the postings visited by ``algorithm`` (indexer.index.ALGORITHMS; None: the process default; the
        same hits whichever); a row without terms finds nothing."""
        ...

    def search_dense_batch(self, vectors: np.ndarray, k: int, filter: Node | None = None) -> list[Hits]:
        """Per row of ``vectors`` (n, dim): its top ``k`` by inner product among the documents matching ``filter``."""
        ...


@dataclass
class Found:
    """One query's answer from ``search_vectors``; the seconds are its share of the batch's."""

    hits: Hits
    postings: int = 0
    sparse_s: float = 0.0
    dense_s: float = 0.0
    fuse_s: float = 0.0


def search_vectors(
    source: Source,
    mode: str,
    k: int,
    *,
    sparse: SparseBatch | None = None,
    dense: np.ndarray | None = None,
    fusion: Fusion | None = None,
    threads: int = 1,
    depth: int | None = None,
    filter: Node | None = None,
    algorithm: str | None = None,
) -> list[Found]:
    """The hits of already-encoded queries: ``sparse`` rows for sparse and hybrid, ``dense`` rows for dense and
    hybrid. Hybrid fuses each query's two lists, searched ``max(k, depth)`` deep (default ``FUSION_DEPTH``), and
    keeps the top ``k``: for any k up to the depth, a document's fused score is the same.
    ``filter`` (retrieval.filters) restricts every list to the documents whose metadata match it; ``algorithm`` is
    how the sparse index visits the postings (exact whichever: indexer.index.ALGORITHMS)."""
    if mode not in INDEX_MODES:
        raise ValueError(f"mode must be one of {INDEX_MODES}, not {mode!r}")
    depth = max(k, FUSION_DEPTH if depth is None else depth)
    n = sparse.num_rows if sparse is not None else (len(dense) if dense is not None else 0)
    found = [Found([]) for _ in range(n)]
    sparse_hits = dense_hits = None
    if mode in ("sparse", "hybrid"):
        if sparse is None:
            raise ValueError(f"{mode} search needs the queries' sparse vectors")
        t0 = time.perf_counter()
        rows = source.search_sparse_batch(sparse, depth if mode == "hybrid" else k, threads, filter, algorithm)
        share = (time.perf_counter() - t0) / max(n, 1)
        sparse_hits = [h for h, _ in rows]
        for f, (_, postings) in zip(found, rows):
            f.postings, f.sparse_s = postings, share
    if mode in ("dense", "hybrid"):
        if dense is None:
            raise ValueError(f"{mode} search needs the queries' dense vectors")
        if len(dense) != n:
            raise ValueError(f"{len(dense)} dense vectors for {n} queries")
        t0 = time.perf_counter()
        dense_hits = source.search_dense_batch(
            np.ascontiguousarray(dense, dtype=np.float32), depth if mode == "hybrid" else k, filter
        )
        share = (time.perf_counter() - t0) / max(n, 1)
        for f in found:
            f.dense_s = share
    for i, f in enumerate(found):
        if mode == "sparse":
            f.hits = sparse_hits[i]
        elif mode == "dense":
            f.hits = dense_hits[i]
        else:
            t0 = time.perf_counter()
            fused = fuse([{"q": dict(sparse_hits[i])}, {"q": dict(dense_hits[i])}], fusion or Fusion(), k)
            f.hits = list(fused.get("q", {}).items())
            f.fuse_s = time.perf_counter() - t0
    return found


@dataclass
class Collection:
    path: Path
    meta: dict
    sparse: Index
    dense: Any | None  # the faiss index, rows in the sparse index's doc order
    dense_rows: np.ndarray | None = None  # a flat index's rows (docs, dim), searched by retrieval.dense
    _columns: MetadataColumns | None = field(default=None, repr=False)  # built on the first filtered search

    @classmethod
    def open(cls, folder: str | Path) -> Collection:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such collection folder (make one with lsr index)")
        if not (folder / COLLECTION).exists():
            raise IncompleteCollectionError(f"{folder}: no {COLLECTION}; the collection was never completed")
        meta = json.loads((folder / COLLECTION).read_text())
        sparse = Index.open(folder / SPARSE)
        dense = None
        if (folder / DENSE).exists():
            import faiss

            dense = faiss.read_index(str(folder / DENSE), faiss.IO_FLAG_MMAP)  # IVF lists stay on disk
            if dense.ntotal != sparse.num_docs:
                raise IncompleteCollectionError(f"{folder}: dense and sparse indexes disagree on the doc count")
        rows = None
        if dense is not None and isinstance(dense, faiss.IndexFlat):  # exact: retrieval.dense, as live segments
            import faiss  # a view of the flat index's own storage (it lives as long as self.dense), no copy

            n, d = dense.ntotal, dense.d
            rows = faiss.rev_swig_ptr(dense.get_xb(), n * d).reshape(n, d) if n else np.zeros((0, d), np.float32)
        return cls(folder, meta, sparse, dense, rows)

    @property
    def num_docs(self) -> int:
        return self.sparse.num_docs

    def allowed(self, filter: Node) -> np.ndarray:
        """The documents (index order) whose metadata match ``filter``."""
        if self._columns is None:
            records = []
            for k in range(self.meta["shards"]):
                got = read_metadata(shard_path(self.path, k))
                records += (
                    got if got is not None else [None] * read_shard(shard_path(self.path, k), dense=False)[1].num_rows
                )
            if all(m is None for m in records):
                raise ValueError(f"{self.path}: its documents have no metadata to filter on")
            self._columns = MetadataColumns.build(len(records), list(enumerate(records)))
        return self._columns.mask(filter)

    def search_sparse_batch(
        self, queries: SparseBatch, k: int, threads: int = 1, filter: Node | None = None, algorithm: str | None = None
    ) -> list[tuple[Hits, int]]:
        """``Source``: one native batch search over every query row that has terms (documents matching ``filter``
        only: the native allowed-document bitmap)."""
        allowed = None if filter is None else self.allowed(filter)
        rows, batch = queries.nonempty()
        out: list[tuple[Hits, int]] = [([], 0)] * queries.num_rows
        if rows and (allowed is None or allowed.any()):
            res = self.sparse.search_batch(batch, k=k, threads=threads, allowed=allowed, algorithm=algorithm)
            for j, i in enumerate(rows):
                out[i] = ([(h.doc_id, h.score) for h in self.sparse.hits(res, j)], int(res.postings[j]))
        return out

    def search_dense_batch(self, vectors: np.ndarray, k: int, filter: Node | None = None) -> list[Hits]:
        """``Source``: the flat index's rows by exact inner product (``retrieval.dense``, as the live index), faiss's
        HNSW graph, or its memory-mapped IVF-PQ lists (``IVFPQ_NPROBE`` of them); each restricted to the documents
        matching ``filter``."""
        if self.dense is None:
            raise ValueError(f"{self.path} has no dense index")
        allowed = None if filter is None else self.allowed(filter)
        lex = self.sparse.lexicon
        if self.dense_rows is not None:
            found = dense_top_k(self.dense_rows, vectors, k, allowed)
            return [[(lex[r], s) for r, s in zip(rows.tolist(), scores.tolist())] for rows, scores in found]
        import faiss

        refine = isinstance(self.dense, faiss.IndexRefine)
        kw: dict = {"nprobe": IVFPQ_NPROBE} if refine else {}
        if allowed is not None:  # faiss's bitmap selector: filtered inside the graph walk or the list scan
            bits = np.packbits(allowed, bitorder="little")
            kw["sel"] = faiss.IDSelectorBitmap(self.num_docs, faiss.swig_ptr(bits))
        params = None
        if refine:
            params = faiss.IndexRefineSearchParameters(
                k_factor=IVFPQ_K_FACTOR, base_index_params=faiss.SearchParametersIVF(**kw)
            )
        elif kw:
            params = faiss.SearchParametersHNSW(**kw)
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        scores, docs = self.dense.search(x, min(k, self.num_docs), params=params)
        return [[(lex[int(d)], float(s)) for d, s in zip(dr, sr) if d >= 0] for dr, sr in zip(docs, scores)]

    def float_matrix(self):  # noqa: ANN201 - scipy.sparse.csr_matrix
        """The documents' unquantised sparse vectors (docs x vocab), from the shards, in index order."""
        import scipy.sparse as sp

        shards = iter_shards(self.path, self.meta["shards"], dense=False)
        return sp.vstack([batch.to_scipy(self.sparse.vocab_size) for _, batch, _ in shards], format="csr")


@dataclass
class Timings:
    encode_s: float = 0.0
    search_s: float = 0.0
    per_query_ms: list[float] = field(default_factory=list)
    query_nnz: float = 0.0


class Searcher:
    """A built collection and its query encoders: query texts in, runs (query id -> doc id -> score) and the time
    each stage took out. Every query runs alone through ``search_vectors`` (per-query latency is part of the
    report); ``exact`` scores every document in float64 instead (the slow twin)."""

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
        per_query: bool = True,
        filter: dict | None = None,
        prune: Pruning | None = None,
        depth: int | None = None,
    ) -> tuple[Run, Timings]:
        """``per_query``: each query searched alone, so that ``Timings.per_query_ms`` holds its latency (eval);
        otherwise all of them in one batch on ``threads`` threads (``lsr search --queries``). ``filter``: only
        documents whose metadata match (retrieval.filters; the corpus records' ``metadata`` objects). ``prune``:
        query term pruning (approximate; not for exact). ``depth``: hybrid's fusion depth (``search_vectors``)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        node = None if filter is None else parse_filter(filter)
        t = Timings()
        if mode == "exact":
            return self.exact(queries, k, t, node), t
        return self._run(queries, mode, k, fusion, t, threads, per_query, node, prune, depth), t

    def sparse(self, queries: dict[str, str], k: int, t: Timings, threads: int = 1) -> Run:
        return self._run(queries, "sparse", k, None, t, threads)

    def dense(self, queries: dict[str, str], k: int, t: Timings) -> Run:
        return self._run(queries, "dense", k, None, t, 1)

    def _run(
        self, queries: dict[str, str], mode: str, k: int, fusion: Fusion | None, t: Timings, threads: int,
        per_query: bool = True, filter: Node | None = None, prune: Pruning | None = None, depth: int | None = None,
    ) -> Run:  # fmt: skip
        if mode in ("dense", "hybrid") and (self.collection.dense is None or self.dense_encoder is None):
            raise ValueError(f"{self.collection.path} has no dense index (or no dense encoder was given)")
        qids = list(queries)
        texts = [queries[q] for q in qids]
        qb = emb = None
        t0 = time.perf_counter()
        if mode in ("sparse", "hybrid"):
            qb = self.sparse_encoder.encode_queries(texts)
            if prune is not None:
                qb = qb.pruned(prune.max_terms, prune.mass)
            t.query_nnz = qb.nnz / max(qb.num_rows, 1)
        if mode in ("dense", "hybrid"):
            emb = np.ascontiguousarray(self.dense_encoder.encode_queries(texts), dtype=np.float32)
        t.encode_s += time.perf_counter() - t0
        run: Run = {}
        if not per_query and qids:
            found = search_vectors(
                self.collection,
                mode,
                k,
                sparse=qb,
                dense=emb,
                fusion=fusion,
                threads=threads,
                filter=filter,
                depth=depth,
            )
            for q, f in zip(qids, found):
                run[q] = dict(f.hits)
                t.search_s += f.sparse_s + f.dense_s + f.fuse_s
            return run
        for i, q in enumerate(qids):  # one at a time: per-query latency is part of the report
            (f,) = search_vectors(
                self.collection, mode, k, sparse=None if qb is None else qb.take([i]),
                dense=None if emb is None else emb[i : i + 1], fusion=fusion, threads=threads, filter=filter,
                depth=depth,
            )  # fmt: skip
            seconds = f.sparse_s + f.dense_s + f.fuse_s
            t.search_s += seconds
            t.per_query_ms.append(seconds * 1000)
            run[q] = dict(f.hits)
        return run

    def exact(self, queries: dict[str, str], k: int, t: Timings, filter: Node | None = None) -> Run:
        """Every document scored in float64 from its float32 vector (no quantisation, no index); with ``filter``,
        only the documents whose metadata match."""
        if self._matrix is None:
            self._matrix = self.collection.float_matrix().T.tocsr().astype(np.float64)
        qids = list(queries)
        t0 = time.perf_counter()
        qb = self.sparse_encoder.encode_queries([queries[q] for q in qids])
        t.encode_s += time.perf_counter() - t0
        t.query_nnz = qb.nnz / max(qb.num_rows, 1)
        q = qb.to_scipy(self._matrix.shape[0])
        lex = self.collection.sparse.lexicon
        allowed = None if filter is None else self.collection.allowed(filter)
        run: Run = {}
        t1 = time.perf_counter()
        for lo in range(0, len(qids), 256):
            scores = (q[lo : lo + 256].astype(np.float64) @ self._matrix).toarray()
            for i, row in enumerate(scores):
                hit = np.flatnonzero((row > 0) if allowed is None else (row > 0) & allowed)
                top = hit[np.lexsort((hit, -row[hit]))][:k]
                run[qids[lo + i]] = {lex[int(d)]: float(row[d]) for d in top}
        t.search_s += time.perf_counter() - t1
        return run
