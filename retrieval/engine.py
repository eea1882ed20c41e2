"""The engine behind the REST service: named live indexes under one folder, the encoders
they need (each model loaded once), and the operations on them. Nothing here knows HTTP.

    engine = Engine(Path("runs/service"))
    engine.open_all()
    engine.import_collection("scifact", Path("runs/scifact"))   # an `lsr index` collection
    result = engine.search("scifact", Query(text="cells"), mode="hybrid", k=10)
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from indexer import SparseBatch
from indexer.atomic import publish_dir, remove_stale_staging, staging_dir
from indexer.csr import prune_terms

from .collection import COLLECTION, input_fingerprint, iter_shards, legacy_fingerprint
from .corpus import read_docs
from .encoders import Encoders
from .filters import FilterError, Node
from .filters import parse as parse_filter
from .fusion import Fusion
from .given import (
    check_ids,
    check_metadata,
    check_sparse_query,
    document_vectors,
    has_dense_query,
    sparse_query,
    storable,
)
from .live import AnyLiveIndex, IndexSpec, LiveIndex, ShardedLiveIndex, is_live, open_live
from .merger import Merger
from .query import (
    Contribution,
    IndexFailedError,
    NewDocument,
    Pruning,
    Query,
    QueryError,
    SearchResult,
    UnknownIndexError,
)
from .searcher import INDEX_MODES, search_vectors
from .snapshot import SnapshotInfo, SnapshotStore, restore

logger = logging.getLogger(__name__)

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
STAGED = re.compile(r"^\.([a-z0-9][a-z0-9_-]{0,63})\.building-")
MODES = INDEX_MODES


def _filter(raw: dict | None) -> Node | None:
    try:
        return None if raw is None else parse_filter(raw)
    except FilterError as e:
        raise QueryError(str(e)) from None


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise QueryError(f"mode must be one of {MODES}")


@dataclass
class Engine:
    root: Path
    encoders: Encoders = field(default_factory=Encoders)
    _indexes: dict[str, AnyLiveIndex] = field(default_factory=dict)
    _failed: dict[str, str] = field(default_factory=dict)  # name -> why it could not be opened
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _merger: Merger | None = None
    # how a folder is opened: in this process (default), or with a sharded index's shards elsewhere (on Ray:
    # retrieval.live.ray_shards.opener)
    open_index: Callable[[Path], AnyLiveIndex] = open_live

    # -- indexes -------------------------------------------------------------------------------------

    def open_all(self, load_models: bool = True) -> None:
        """Open every index under ``root`` (and, with ``load_models`` and torch installed, its encoders)."""
        self.root.mkdir(parents=True, exist_ok=True)
        for folder in list(self.root.iterdir()):  # left by a process that died mid-import or mid-drop
            if leftover := STAGED.match(folder.name):
                remove_stale_staging(self.root / leftover[1])
            elif ".deleted-" in folder.name and folder.name.startswith("."):
                shutil.rmtree(folder, ignore_errors=True)
        for folder in sorted(self.root.iterdir()):
            if NAME.match(folder.name) and folder.is_dir() and not is_live(folder):
                if (folder / "segments").is_dir():  # an index that lost its catalog must not vanish silently
                    self._failed[folder.name] = f"FileNotFoundError: {folder / 'catalog.sqlite'} is missing"
                    logger.error("index %s not opened: %s", folder.name, self._failed[folder.name])
                continue
            if NAME.match(folder.name) and is_live(folder):
                try:
                    self._indexes[folder.name] = self.open_index(folder)
                except Exception as e:  # noqa: BLE001 - one damaged index must not keep the others from serving
                    self._failed[folder.name] = f"{type(e).__name__}: {e}"
                    logger.error("index %s not opened: %s", folder.name, self._failed[folder.name])
                    continue
                if load_models and self.encoders.available:
                    self.models(folder.name)
        if not self.encoders.available:
            logger.warning("torch is not installed: serving pre-encoded vectors only (text needs the torch extra)")
        logger.info("opened %d indexes under %s", len(self._indexes), self.root)

    def start_merging(self, interval: float = 5.0) -> None:
        """Merge segments in a background thread after writes (see :mod:`retrieval.merger`)."""
        if self._merger is None:
            self._merger = Merger(lambda: list(self._indexes.values()), interval)
            self._merger.start()

    def close(self) -> None:
        """Stop background merging and close every index."""
        if self._merger is not None:
            self._merger.stop()
            self._merger = None
        with self._lock:
            indexes, self._indexes = list(self._indexes.values()), {}
        for index in indexes:
            index.close()

    def names(self) -> list[str]:
        return sorted(self._indexes)

    def get(self, name: str) -> AnyLiveIndex:
        try:
            return self._indexes[name]
        except KeyError:
            if name in self._failed:
                raise IndexFailedError(name, self._failed[name]) from None
            raise UnknownIndexError(name) from None

    def failed(self) -> dict[str, str]:
        """The indexes that could not be opened, and why."""
        return dict(self._failed)

    def models(self, name: str) -> tuple[Any, Any | None]:
        spec = self.get(name).spec
        sparse = self.encoders.sparse(spec.sparse_model)
        dense = self.encoders.dense(spec.dense_model) if spec.dense_model else None
        return sparse, dense

    def create(
        self,
        name: str,
        sparse_model: str,
        dense_model: str | None,
        doc_max_terms: int | None = None,
        doc_mass: float | None = None,
        max_weight: float | None = None,
        shards: int = 1,
    ) -> AnyLiveIndex:
        """A new, empty index; ``doc_max_terms`` / ``doc_mass`` prune every document's sparse vector in its index
        (static pruning, approximate) while the stored vectors stay whole; ``max_weight`` fixes the top of every
        segment's impact scale (``IndexSpec.max_weight``); ``shards`` > 1 splits it into that many live indexes
        (``ShardedLiveIndex``, which needs ``max_weight``)."""
        self._check_new(name)
        if doc_max_terms is not None and (not isinstance(doc_max_terms, int) or doc_max_terms < 1):
            raise ValueError(f"doc_max_terms must be a positive integer, got {doc_max_terms!r}")
        if doc_mass is not None and not 0.0 < doc_mass <= 1.0:
            raise ValueError(f"doc_mass must be in (0, 1], got {doc_mass!r}")
        if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
            raise ValueError(f"shards must be a positive integer, got {shards!r}")
        if shards > 1 and max_weight is None:
            raise ValueError("a sharded index needs max_weight (a fixed impact scale), so that its shards score as one")
        spec = replace(self._spec(sparse_model, dense_model), doc_max_terms=doc_max_terms, doc_mass=doc_mass,
                       max_weight=max_weight)  # fmt: skip
        with self._lock:
            self._check_new(name)
            if shards == 1:
                LiveIndex.create(self.root / name, spec).close()
            else:
                ShardedLiveIndex.create(self.root / name, spec, shards).close()
            self._indexes[name] = self.open_index(self.root / name)
        return self._indexes[name]

    def _check_new(self, name: str) -> None:
        if not NAME.match(name):
            raise ValueError(f"index names are 1-64 of a-z, 0-9, '_', '-' (starting with a letter or digit): {name!r}")
        if name in self._indexes or (self.root / name).exists():
            raise FileExistsError(f"index {name!r} exists")

    def _spec(self, sparse_model: str, dense_model: str | None) -> IndexSpec:
        sparse = self.encoders.sparse(sparse_model)
        dense = self.encoders.dense(dense_model) if dense_model else None
        dim = None if dense is None else int(dense.encode_queries(["dimension probe"]).shape[1])
        return IndexSpec(sparse_model, sparse.vocab_size, sparse.vocab_hash, dense_model, dim)

    def drop(self, name: str) -> None:
        """Delete an index (a damaged one too: the way back is then to restore a snapshot under its name)."""
        with self._lock:
            if name in self._failed:
                index = None
                del self._failed[name]
            else:
                index = self.get(name)
                del self._indexes[name]
        if index is not None:
            index.close()
        trash = self.root / f".{name}.deleted-{time.monotonic_ns()}"
        (self.root / name).rename(trash)
        shutil.rmtree(trash, ignore_errors=True)

    def import_collection(self, name: str, collection: Path) -> AnyLiveIndex:
        """A new index holding an `lsr index` collection's vectors (no re-encoding) and its
        texts. It is filled in a hidden folder and appears whole, or not at all."""
        import json

        meta = json.loads((collection / COLLECTION).read_text())
        job = meta["job"]
        self._check_new(name)
        if self.encoders.available:
            spec = self._spec(job["sparse_model"], job["dense_model"])
            if spec.vocab_hash != meta["vocab_hash"]:
                raise ValueError(f"{collection}: built with another vocabulary than {job['sparse_model']} has now")
        else:  # no encoders here: the vectors' shapes as the collection recorded them
            dense_dim = None
            if job["dense_model"]:
                _, _, first = next(iter_shards(collection, 1))
                dense_dim = int(first.shape[1])
            spec = IndexSpec(job["sparse_model"], meta["vocab_size"], meta["vocab_hash"], job["dense_model"], dense_dim)
        spec = replace(spec, doc_max_terms=job.get("doc_max_terms"), doc_mass=job.get("doc_mass"))
        now = input_fingerprint(Path(job["input"]))
        if now != job["input_fingerprint"] and not legacy_fingerprint(job["input_fingerprint"], now):
            raise ValueError(f"{job['input']} changed since {collection} was built; its texts would not match")
        staged = staging_dir(self.root / name)
        try:
            index = LiveIndex.create(staged / name, spec)
            docs = read_docs(
                Path(job["input"]), fmt=job["fmt"], id_field=job["id_field"], text_fields=tuple(job["text_fields"])
            )
            for ids, sparse, dense in iter_shards(collection, meta["shards"]):
                records = {}
                for doc in docs:  # shards hold the corpus's records in order
                    records[doc.id] = doc
                    if len(records) == len(ids):
                        break
                if list(records) != ids:
                    raise ValueError(f"{collection}: shard ids do not follow the corpus {job['input']}")
                index.upsert(
                    ids,
                    sparse,
                    dense,
                    texts=[records[i].text for i in ids],
                    metadata=[records[i].metadata for i in ids],
                )
            while index.merge(max_segments=1, count=len(index.segments)):
                pass
            index.close()
            with self._lock:
                self._check_new(name)
                publish_dir(staged / name, self.root / name, overwrite=False)
                self._indexes[name] = self.open_index(self.root / name)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        return self._indexes[name]

    # -- snapshots -----------------------------------------------------------------------------------

    @property
    def _snapshots(self) -> SnapshotStore:
        return SnapshotStore(self.root / "_snapshots")  # not an index name, so open_all never opens it

    def snapshot(self, name: str) -> SnapshotInfo:
        """A snapshot of the index's committed state (see :mod:`retrieval.snapshot`)."""
        return self._snapshots.take(self.get(name))

    def snapshots(self) -> list[SnapshotInfo]:
        """Every snapshot, oldest first; a folder whose manifest cannot be read is skipped."""
        return self._snapshots.list()

    def drop_snapshot(self, snapshot: str) -> None:
        self._snapshots.drop(snapshot)

    def restore(self, snapshot: str, name: str) -> AnyLiveIndex:
        """A new index ``name`` from a snapshot, every file's checksum verified first."""
        folder = self._snapshots.folder(snapshot)
        self._check_new(name)
        with self._lock:
            self._check_new(name)
            index = self._indexes[name] = restore(folder, self.root / name, self.open_index)
        self.models(name)
        return index

    # -- queries -------------------------------------------------------------------------------------

    def sparse_vector(self, name: str, q: Query) -> tuple[np.ndarray, np.ndarray, float]:
        """The query's sparse vector (term ids u32, weights f32) and the encoding time in ms."""
        index = self.get(name)
        self._check_sparse_query(name, q)
        t0 = time.perf_counter()
        if q.text is not None:
            idx, val = self.encoders.sparse_query(index.spec.sparse_model, q.text)
        else:
            idx, val = self._given_sparse(name, q)
        return idx, val, (time.perf_counter() - t0) * 1000

    def _check_sparse_query(self, name: str, q: Query) -> None:
        check_sparse_query(name, self.get(name).spec, q)

    def _given_sparse(self, name: str, q: Query) -> tuple[np.ndarray, np.ndarray]:
        """A query given as tokens or as term ids, checked against the index's vocabulary."""
        return sparse_query(self.get(name).spec, q, lambda: self.models(name)[0].tokenizer)

    def dense_vector(self, name: str, q: Query) -> tuple[np.ndarray, float]:
        index = self.get(name)
        t0 = time.perf_counter()
        if self._check_dense_query(name, q):
            v = np.asarray(q.dense, np.float32)
        else:
            v = self.encoders.dense_query(index.spec.dense_model, q.text)
        return v, (time.perf_counter() - t0) * 1000

    def _check_dense_query(self, name: str, q: Query) -> bool:
        return has_dense_query(name, self.get(name).spec, q)

    def search(
        self, name: str, q: Query, mode: str = "sparse", k: int = 10, fusion: Fusion | None = None
    ) -> SearchResult:
        """One query; a text query is encoded through the model's micro-batcher (shared with concurrent calls)."""
        _check_mode(mode)
        res = SearchResult(hits=[])
        sparse = dense = None
        if mode in ("sparse", "hybrid"):
            idx, val, res.encode_ms = self.sparse_vector(name, q)
            sparse = [(idx, val)]
        if mode in ("dense", "hybrid"):
            v, ms = self.dense_vector(name, q)
            res.encode_ms += ms
            dense = v[None, :]
        return self._search_vectors(name, [res], sparse, dense, mode, k, fusion, 1, _filter(q.filter), q.prune,
                                    q.algorithm)[0]  # fmt: skip

    def search_batch(
        self, name: str, queries: Sequence[Query], mode: str = "sparse", k: int = 10, fusion: Fusion | None = None,
        threads: int = 1,
    ) -> list[SearchResult]:  # fmt: skip
        """Many queries at once: the texts encoded in one call per model, one native batch search per segment on
        ``threads`` threads; each result's encode_ms and search_ms are its share of the batch's."""
        _check_mode(mode)
        index = self.get(name)
        nodes = {_filter(q.filter) for q in queries}  # parsed trees compare by content, whatever the key order
        if len(nodes) > 1:
            raise QueryError("one batch search takes one filter; group the queries by filter")
        node = nodes.pop() if nodes else None
        prunes = {q.prune for q in queries}
        if len(prunes) > 1:
            raise QueryError("one batch search takes one pruning setting; group the queries by it")
        prune = prunes.pop() if prunes else None
        algorithms = {q.algorithm for q in queries}
        if len(algorithms) > 1:
            raise QueryError("one batch search takes one algorithm; group the queries by it")
        algorithm = algorithms.pop() if algorithms else None
        results = [SearchResult(hits=[]) for _ in queries]
        n = max(len(queries), 1)
        sparse = dense = None
        if mode in ("sparse", "hybrid"):
            for q in queries:
                self._check_sparse_query(name, q)
            t0 = time.perf_counter()
            texts = [i for i, q in enumerate(queries) if q.text is not None]
            sparse = [None] * len(queries)
            if texts:
                rows = self.encoders.queries("sparse", index.spec.sparse_model, [queries[i].text for i in texts])
                for j, i in enumerate(texts):
                    sparse[i] = rows[j]
            for i, q in enumerate(queries):
                if q.text is None:
                    sparse[i] = self._given_sparse(name, q)
            ms = (time.perf_counter() - t0) * 1000 / n
            for r in results:
                r.encode_ms += ms
        if mode in ("dense", "hybrid"):
            own = [self._check_dense_query(name, q) for q in queries]
            t0 = time.perf_counter()
            dense = np.zeros((len(queries), index.spec.dense_dim), np.float32)
            texts = [i for i, has in enumerate(own) if not has]
            if texts:
                dense[texts] = np.stack(
                    self.encoders.queries("dense", index.spec.dense_model, [queries[i].text for i in texts])
                )
            for i, has in enumerate(own):
                if has:
                    dense[i] = np.asarray(queries[i].dense, np.float32)
            ms = (time.perf_counter() - t0) * 1000 / n
            for r in results:
                r.encode_ms += ms
        return self._search_vectors(name, results, sparse, dense, mode, k, fusion, threads, node, prune, algorithm)

    def _search_vectors(
        self, name: str, results: list[SearchResult], sparse: list | None, dense: np.ndarray | None, mode: str,
        k: int, fusion: Fusion | None, threads: int, filter: Node | None = None, prune: Pruning | None = None,
        algorithm: str | None = None,
    ) -> list[SearchResult]:  # fmt: skip
        """Encoded queries in, hits out, through the one query path (``retrieval.searcher.search_vectors``); with
        ``prune``, each sparse vector is cut to its heaviest terms first (what the result reports and explains)."""
        batch = None
        if sparse is not None:
            rows = []
            for r, (idx, val) in zip(results, sparse):
                if prune is not None:
                    idx, val = prune_terms(idx, val, prune.max_terms, prune.mass)
                keep = val > 0
                r.sparse_query = idx, val
                r.query_nnz = int(np.count_nonzero(val))
                rows.append((idx[keep].astype(np.uint32, copy=False), val[keep].astype(np.float32, copy=False)))
            batch = SparseBatch.concat(SparseBatch(np.array([0, len(i)], np.uint64), i, v) for i, v in rows)
        found = search_vectors(
            self.get(name), mode, k, sparse=batch, dense=dense, fusion=fusion, threads=threads, filter=filter,
            algorithm=algorithm,
        )  # fmt: skip
        for r, f in zip(results, found):
            r.hits, r.postings = f.hits, f.postings
            r.search_ms += (f.sparse_s + f.dense_s + f.fuse_s) * 1000
        return results

    def explain(self, name: str, q: Query, doc_ids: Sequence[str]) -> dict[str, tuple[list[Contribution], float]]:
        """Per-term contributions of the query's sparse vector to each document's float score
        (the query encoded once); unknown ids are absent."""
        index = self.get(name)
        idx, val, _ = self.sparse_vector(name, q)
        query: dict[int, float] = {}
        for t, w in zip(idx.tolist(), val.tolist()):
            query[t] = query.get(t, 0.0) + w
        enc, _ = self.models(name)
        out = {}
        for doc_id in doc_ids:
            stored = index.vector(doc_id)
            if stored is None:
                continue
            d_idx, d_val = stored
            doc = dict(zip(d_idx.tolist(), d_val.tolist()))
            shared = sorted((t for t in query if t in doc), key=lambda t: -query[t] * doc[t])
            tokens = enc.tokenizer.convert_ids_to_tokens(shared) if shared else []
            terms = [Contribution(t, tok, query[t], doc[t], query[t] * doc[t]) for t, tok in zip(shared, tokens)]
            out[doc_id] = terms, float(sum(c.product for c in terms))
        return out

    # -- documents -----------------------------------------------------------------------------------

    def upsert(
        self,
        name: str,
        ids: Sequence[str],
        texts: Sequence[str | None],
        metadata: Sequence[dict | None],
        sparse: SparseBatch | None = None,
        dense: np.ndarray | None = None,
    ) -> int:
        """Add or replace documents; vectors the caller did not give are encoded from the texts. Ids and metadata
        that could not be read back as written are refused first (``retrieval.given``)."""
        index = self.get(name)
        check_ids(ids)
        for doc_id, m in zip(ids, metadata):
            check_metadata(doc_id, m)
        if sparse is None or (dense is None and index.spec.dense_dim is not None):
            if any(t is None for t in texts):
                raise QueryError("documents without vectors need a text to encode")
            enc, denc = self.models(name)
            if sparse is None:
                sparse = enc.encode_documents(list(texts))
            if dense is None and denc is not None:
                dense = denc.encode_documents(list(texts)).astype(np.float32)
        n = index.upsert(ids, sparse, dense, texts=texts, metadata=metadata)
        self._poke()
        return n

    def upsert_documents(self, name: str, docs: Sequence[NewDocument], vocab_hash: str | None = None) -> int:
        """Add or replace documents given as records: either every one carries its sparse vector (and its dense one
        when the index has dense vectors) or none does and their texts are encoded here. Every check of the
        request's content lives here; LiveIndex.upsert checks the arrays again as its own contract."""
        sparse, dense = document_vectors(name, self.get(name).spec, docs, vocab_hash)
        ids = [d.id for d in docs]
        return self.upsert(name, ids, [d.text for d in docs], [d.metadata for d in docs], sparse=sparse, dense=dense)

    def delete(self, name: str, ids: Sequence[str]) -> list[str]:
        """Delete documents; returns the ids that were not there. An id that is not valid UTF-8 (a lone surrogate)
        is refused: it could never have been stored, nor be named in a reply."""
        if bad := [i for i in ids if not storable(i)]:
            raise QueryError(f"{len(bad)} id(s) are not valid UTF-8 text (lone surrogates)")
        missing = self.get(name).delete(ids)
        self._poke()
        return missing

    def _poke(self) -> None:
        if self._merger is not None:
            self._merger.poke()
