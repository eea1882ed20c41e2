"""LiveIndex: the folder of segments and its catalog (see the package docstring)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer import SparseBatch, build_index
from indexer.atomic import staged

from ..dense import top_k as dense_top_k
from ..filters import MetadataColumns, Node
from ..vectors import verify_vectors, write_vectors
from .catalog import CATALOG, SCHEMA, add_checksums, check_row, row_checksum, select_docs
from .merge_policy import MAX_SEGMENTS, MERGE_COUNT, merge_plan
from .segment import VECTORS, Segment, seg_name

logger = logging.getLogger(__name__)

SEGMENTS = "segments"


def _rank(hit: tuple[float, int, int, str]) -> tuple[float, int, int]:
    """Best score first; ties by segment, then by row: the order each segment's own top-k keeps (the native queue
    prefers the smaller doc number), so the top k is always a prefix of the top k + 1."""
    return -hit[0], hit[1], hit[2]


@dataclass(frozen=True)
class IndexSpec:
    """What an index's vectors are: the models that made them and their shapes."""

    sparse_model: str
    vocab_size: int
    vocab_hash: str
    dense_model: str | None = None
    dense_dim: int | None = None
    doc_max_terms: int | None = None  # static pruning of every segment's sparse index (indexer.csr.prune_rows);
    doc_mass: float | None = None  # the segment's vector file keeps the whole vectors
    # the top of every segment's 8-bit impact scale (build_index's max_weight): with it fixed, a document's score
    # does not depend on which segment holds it, so merges keep scores and shards of one index score as one index
    # does; a document weight above it is refused. None: each segment quantises on its own largest weight
    max_weight: float | None = None


@dataclass(frozen=True)
class IndexStats:
    segments: int
    postings: int
    bytes: int


@dataclass(frozen=True)
class StoredDoc:
    id: str
    text: str | None
    metadata: dict | None


def check_documents(spec: IndexSpec, ids: Sequence[str], sparse: SparseBatch, dense: np.ndarray | None) -> SparseBatch:
    """What an upsert must hold before anything is written: unique ids, one sparse row each within the vocabulary
    and the fixed impact scale, and float32 finite dense rows exactly when the index has them. Returns the sparse
    rows validated (``SparseBatch.validated``)."""
    n = len(ids)
    sparse = SparseBatch(*sparse).validated(spec.vocab_size, what="documents")
    if sparse.num_rows != n or len(set(ids)) != n:
        raise ValueError("ids must be unique and match the sparse rows")
    top = spec.max_weight
    if top is not None and len(sparse.values) and np.float32(sparse.values.max()) > np.float32(top):
        raise ValueError(f"a document weight of {float(sparse.values.max()):g} is above this index's fixed "
                         f"impact scale (max_weight {top:g})")  # fmt: skip
    if spec.dense_dim is not None:
        if dense is None or dense.shape != (n, spec.dense_dim) or dense.dtype != np.float32:
            raise ValueError(f"this index needs float32 dense vectors of shape ({n}, {spec.dense_dim})")
        if not np.isfinite(dense).all():
            raise ValueError("dense vectors must be finite")
    elif dense is not None:
        raise ValueError("this index has no dense vectors")
    return sparse


def connect(path: Path) -> tuple[sqlite3.Connection, IndexSpec]:
    """A connection to a live index's catalog (autocommit, shareable between threads) and the index's spec."""
    if not (path / CATALOG).is_file():
        raise FileNotFoundError(f"{path}: no {CATALOG}; not a live index")
    db = sqlite3.connect(path / CATALOG, check_same_thread=False, isolation_level=None)
    row = db.execute("SELECT value FROM settings WHERE key='spec'").fetchone()
    if row is None:
        db.close()
        raise ValueError(f"{path}: catalog without settings")
    return db, IndexSpec(**json.loads(row[0]))


def read_segments(db: sqlite3.Connection, path: Path, have: tuple[Segment, ...] = ()) -> tuple[Segment, ...]:
    """The segments the catalog names, with their live rows: those among ``have`` (by number) kept, memory maps and
    all, with the new live rows; the others opened. Raises FileNotFoundError for a segment folder that is gone."""
    held = {s.seq: s for s in have}
    out = []
    for seq, rows in db.execute("SELECT seq, rows FROM segments ORDER BY seq").fetchall():
        live = np.array([r for (r,) in db.execute("SELECT row FROM docs WHERE seg=?", (seq,))], dtype=np.int64)
        seg = held[seq].with_live(live) if seq in held else Segment(seq, path / SEGMENTS / seg_name(seq), live)
        if seg.rows != rows:
            raise ValueError(f"{seg.path}: {seg.rows} rows, the catalog says {rows}")
        out.append(seg)
    return tuple(out)


class LiveIndex:
    """A folder of segments and its catalog; thread-safe (one writer at a time, searches lock-free)."""

    def __init__(self, path: Path, db: sqlite3.Connection, spec: IndexSpec, segments: tuple[Segment, ...]) -> None:
        self.path = path
        self.spec = spec
        self._db = db
        self._segments = segments
        self._seq = max([0, *(s.seq for s in segments)])  # the last segment number handed out
        self._write = threading.Lock()  # one writer (upsert, delete, merge commit)
        self._read = threading.Lock()  # the sqlite connection is shared
        self._merging = threading.Lock()  # one merge at a time (it rewrites outside the write lock)
        self._closed = False

    # -- opening -----------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | Path, spec: IndexSpec) -> LiveIndex:
        """A new empty index; refuses an existing folder."""
        path = Path(path)
        top = spec.max_weight
        if top is not None and (isinstance(top, bool) or not isinstance(top, (int, float)) or not np.isfinite(top)
                                or top <= 0):  # fmt: skip
            raise ValueError(f"max_weight must be a positive finite number, got {top!r}")
        if path.exists():
            raise FileExistsError(f"{path} exists")
        with staged(path, overwrite=False) as work:
            (work / SEGMENTS).mkdir()
            db = sqlite3.connect(work / CATALOG)
            with db:
                db.executescript(SCHEMA)
                db.execute("INSERT INTO settings VALUES ('spec', ?)", (json.dumps(spec.__dict__),))
            db.close()
        return cls.open(path)

    @classmethod
    def open(cls, path: str | Path) -> LiveIndex:
        """Open the last committed state; removes segment folders the catalog does not name."""
        path = Path(path)
        db, spec = connect(path)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        add_checksums(db)
        segments = read_segments(db, path)
        named = {seg.path.name for seg in segments}
        for folder in (path / SEGMENTS).iterdir():
            if folder.name not in named:
                logger.warning("%s: removing %s, which no committed change names", path, folder.name)
                shutil.rmtree(folder, ignore_errors=True)
        return cls(path, db, spec, segments)

    def close(self) -> None:
        with self._merging, self._write, self._read:
            self._closed = True
            self._db.close()

    # -- reading -----------------------------------------------------------------------------------

    @property
    def segments(self) -> tuple[Segment, ...]:
        return self._segments

    @property
    def num_docs(self) -> int:
        return sum(s.rows - s.dead for s in self._segments)

    def get(self, ids: Sequence[str]) -> dict[str, StoredDoc]:
        """The stored documents among ``ids`` (unknown ids are absent)."""
        with self._read:
            rows = select_docs(self._db, "id, text, metadata, crc", ids)
        for d, text, meta, crc in rows:
            check_row(d, text, meta, crc)
        return {d: StoredDoc(d, text, None if meta is None else json.loads(meta)) for d, text, meta, _ in rows}

    def locate(self, doc_id: str) -> tuple[Segment, int] | None:
        with self._read:
            row = self._db.execute("SELECT seg, row FROM docs WHERE id=?", (doc_id,)).fetchone()
        if row is None:
            return None
        for seg in self._segments:
            if seg.seq == row[0]:
                return seg, int(row[1])
        return None

    def vector(self, doc_id: str) -> tuple[np.ndarray, np.ndarray] | None:
        """The stored float sparse vector of a live document (term ids, weights), or None."""
        where = self.locate(doc_id)
        return None if where is None else where[0].vector(where[1])

    def stats(self) -> IndexStats:
        """Segments, postings and bytes on disk of the committed segments."""
        segs = self._segments
        return IndexStats(
            segments=len(segs),
            postings=sum(s.sparse.num_postings for s in segs),
            bytes=sum(f.stat().st_size for s in segs for f in s.path.rglob("*") if f.is_file()),
        )

    def search_sparse(self, indices: np.ndarray, values: np.ndarray, k: int) -> tuple[list[tuple[str, float]], int]:
        """Top-``k`` live documents by our index's score, and the postings scored (one row of the batch path)."""
        return self.search_sparse_batch(SparseBatch(np.array([0, len(indices)], np.uint64), indices, values), k)[0]

    def search_sparse_batch(
        self, queries: SparseBatch, k: int, threads: int = 1, filter: Node | None = None, algorithm: str | None = None
    ) -> list[tuple[list[tuple[str, float]], int]]:
        """For each query row: the top-``k`` live documents (matching ``filter``) and the postings scored. One native
        ``search_batch`` per segment serves every row (on ``threads`` threads), with the segment's live rows that
        pass the filter as its allowed-document bitmap: dead rows and filtered-out documents never take a place
        in the top k. A row without terms finds nothing."""
        n = queries.num_rows
        rows, batch = queries.nonempty()
        hits: list[list[tuple[float, int, int, str]]] = [[] for _ in range(n)]
        postings = [0] * n
        if rows:
            for seg in self._segments:
                allowed = self._allowed(seg, filter)
                if allowed is not None and not allowed.any():
                    continue
                res = seg.sparse.search_batch(batch, k=k, threads=threads, allowed=allowed, algorithm=algorithm)
                for j, i in enumerate(rows):
                    postings[i] += int(res.postings[j])
                    c = int(res.counts[j])
                    for d, s in zip(res.docs[j, :c].tolist(), res.scores[j, :c].tolist()):
                        hits[i].append((s, seg.seq, d, seg.sparse.lexicon[d]))
        out = []
        for h, p in zip(hits, postings):
            h.sort(key=_rank)
            out.append(([(d, s) for s, _, _, d in h[:k]], p))
        return out

    def search_dense(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        """Top-``k`` live documents by inner product with ``vector`` (exact; one row of the batch path)."""
        return self.search_dense_batch(np.asarray(vector, np.float32)[None, :], k)[0]

    def search_dense_batch(
        self, vectors: np.ndarray, k: int, filter: Node | None = None
    ) -> list[list[tuple[str, float]]]:
        """For each row of ``vectors`` (n, dim): the top-``k`` live documents (matching ``filter``) by inner product
        (exact)."""
        if self.spec.dense_dim is None:
            raise ValueError(f"index {self.path.name} has no dense vectors")
        hits: list[list[tuple[float, int, int, str]]] = [[] for _ in range(len(vectors))]
        for seg in self._segments:
            if seg.dense is None:
                continue
            allowed = self._allowed(seg, filter)
            for i, (rows, scores) in enumerate(dense_top_k(seg.dense, vectors, k, allowed)):
                hits[i] += [(s, seg.seq, r, seg.sparse.lexicon[r]) for r, s in zip(rows.tolist(), scores.tolist())]
        out = []
        for h in hits:
            h.sort(key=_rank)
            out.append([(d, s) for s, _, _, d in h[:k]])
        return out

    def _allowed(self, seg: Segment, filter: Node | None) -> np.ndarray | None:
        """The rows a hit may come from: live and matching ``filter``; None when that is every row."""
        if filter is None:
            return seg.live.copy() if seg.dead else None  # a copy: writes may kill rows meanwhile
        return seg.live & self._columns(seg).mask(filter)

    def _columns(self, seg: Segment) -> MetadataColumns:
        """The segment's metadata index, built from the catalog on its first filtered search (a row's metadata
        never changes: an upsert writes a new row)."""
        if seg.columns is None:
            with self._read:
                got = self._db.execute(
                    "SELECT row, id, text, metadata, crc FROM docs WHERE seg = ?", (seg.seq,)
                ).fetchall()
            for _, d, text, m, crc in got:  # the filter decides what is found: damaged metadata must not
                check_row(d, text, m, crc)
            seg.columns = MetadataColumns.build(
                seg.rows, [(r, None if m is None else json.loads(m)) for r, _, _, m, _ in got]
            )
        return seg.columns

    # -- writing -----------------------------------------------------------------------------------

    def upsert(
        self,
        ids: Sequence[str],
        sparse: SparseBatch,
        dense: np.ndarray | None = None,
        texts: Sequence[str | None] | None = None,
        metadata: Sequence[dict | None] | None = None,
    ) -> int:
        """Add or replace documents; they are searchable, and durable, when this returns."""
        n = len(ids)
        if n == 0:
            return 0
        sparse = check_documents(self.spec, ids, sparse, dense)
        texts = list(texts) if texts is not None else [None] * n
        metadata = list(metadata) if metadata is not None else [None] * n
        with self._write:
            seq = self._next_seq()
            seg = self._write_segment(seq, [(list(ids), sparse, dense)])
            with self._transaction() as db:
                moved = select_docs(db, "id, seg, row", ids)
                db.execute("INSERT INTO segments VALUES (?, ?)", (seq, n))
                rows = [(d, t, None if m is None else json.dumps(m)) for d, t, m in zip(ids, texts, metadata)]
                db.executemany(
                    "INSERT OR REPLACE INTO docs (id, seg, row, text, metadata, crc) VALUES (?, ?, ?, ?, ?, ?)",
                    [(d, seq, r, t, m, row_checksum(d, t, m)) for r, (d, t, m) in enumerate(rows)],
                )
            self._segments = (*self._segments, seg)
            self._kill(moved)
            self._drop_empty()
        return n

    def delete(self, ids: Sequence[str]) -> list[str]:
        """Delete documents; returns the ids that were not there."""
        with self._write:
            with self._transaction() as db:
                moved = select_docs(db, "id, seg, row", ids)
                db.executemany("DELETE FROM docs WHERE id=?", [(d,) for d in ids])
            self._kill(moved)
            found = {d for d, _, _ in moved}
            self._drop_empty()
        return [d for d in ids if d not in found]

    def merge(self, max_segments: int = MAX_SEGMENTS, count: int = MERGE_COUNT) -> bool:
        """One merge step, if one is due (see :func:`merge_plan`); returns whether it merged.
        The rewrite runs beside searches and writes; the commit re-checks every moved doc."""
        with self._merging:
            if self._closed:
                return False
            chosen = merge_plan(self._segments, max_segments, count)
            if not chosen:
                return False
            return self._merge(chosen)

    def _merge(self, chosen: list[Segment]) -> bool:
        for seg in chosen:  # never carry damaged bytes into a new segment: check them again before reading
            verify_vectors(seg.path / VECTORS)
        parts = [seg.live_vectors() for seg in chosen]
        if not any(ids for ids, _, _ in parts):
            return False  # deleted meanwhile; _drop_empty removes them
        with self._write:
            seq = self._next_seq()
        seg = self._write_segment(seq, parts)
        with self._write:
            old = {s.seq for s in chosen}
            move = f"UPDATE docs SET seg=?, row=? WHERE id=? AND seg IN ({','.join('?' * len(old))})"
            try:
                with self._transaction() as db:
                    db.execute("INSERT INTO segments VALUES (?, ?)", (seq, seg.rows))
                    for row in range(seg.rows):
                        if db.execute(move, (seq, row, seg.sparse.lexicon[row], *old)).rowcount == 0:
                            seg.kill(row)  # replaced or deleted meanwhile: its row here is dead
                    db.executemany("DELETE FROM segments WHERE seq=?", [(s,) for s in old])
            except BaseException:
                shutil.rmtree(seg.path, ignore_errors=True)
                raise
            self._segments = tuple(s for s in self._segments if s.seq not in old) + (seg,)
            self._drop_empty()
        for s in chosen:
            shutil.rmtree(s.path, ignore_errors=True)
        logger.info("%s: merged %d segments into %s (%d docs)", self.path, len(chosen), seg.path.name, seg.rows)
        return True

    def copy_to(self, folder: Path) -> int:
        """Copy the committed state into the empty ``folder``: the catalog through SQLite's
        backup API, segment files hard-linked (they are immutable; copied across file
        systems). Writes wait meanwhile, searches do not. Returns the number of documents."""
        with self._write:
            target = sqlite3.connect(folder / CATALOG)
            try:
                with self._read:
                    self._db.backup(target)
            finally:
                target.close()
            for seg in self._segments:
                for src in sorted(seg.path.rglob("*")):
                    dst = folder / SEGMENTS / seg.path.name / src.relative_to(seg.path)
                    if src.is_dir():
                        continue
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        os.link(src, dst)
                    except OSError:
                        shutil.copy2(src, dst)
            (folder / SEGMENTS).mkdir(exist_ok=True)
            return self.num_docs

    # -- internals ---------------------------------------------------------------------------------

    def _next_seq(self) -> int:
        """A fresh segment number (call under the write lock)."""
        self._seq += 1
        return self._seq

    def _write_segment(self, seq: int, parts: Iterable[tuple[list[str], SparseBatch, np.ndarray | None]]) -> Segment:
        parts = list(parts)
        target = self.path / SEGMENTS / seg_name(seq)
        with staged(target, overwrite=False) as work:
            build_index(
                work / "sparse",
                lambda: ((ids, batch) for ids, batch, _ in parts),
                vocab_size=self.spec.vocab_size,
                model_id=self.spec.sparse_model,
                vocab_hash=self.spec.vocab_hash,
                doc_max_terms=self.spec.doc_max_terms,
                doc_mass=self.spec.doc_mass,
                max_weight=self.spec.max_weight,
            )
            dense = None
            if self.spec.dense_dim is not None:
                dense = np.concatenate([d for _, _, d in parts]).astype(np.float32)
            write_vectors(work / VECTORS, SparseBatch.concat([b for _, b, _ in parts]), dense)
        rows = sum(len(ids) for ids, _, _ in parts)
        return Segment(seq, target, np.arange(rows))

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One catalog transaction: committed when the block ends, rolled back on any exception."""
        with self._read:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _kill(self, moved: list[tuple[str, int, int]]) -> None:
        by_seq = {s.seq: s for s in self._segments}
        for _, seq, row in moved:
            if seq in by_seq:
                by_seq[seq].kill(row)

    def _drop_empty(self) -> None:
        empty = [s for s in self._segments if s.rows == s.dead]
        if not empty:
            return
        with self._transaction() as db:
            db.executemany("DELETE FROM segments WHERE seq=?", [(s.seq,) for s in empty])
        self._segments = tuple(s for s in self._segments if s.rows != s.dead)
        for s in empty:
            shutil.rmtree(s.path, ignore_errors=True)
