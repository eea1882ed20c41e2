"""A live index: documents can be upserted and deleted while it is searched, and every
change that returned survives a crash.

Layout of an index folder::

    catalog.sqlite          the commit point: settings, live segments, one row per live doc
    segments/seg-000001/    immutable, written before the catalog names it
        sparse/             our inverted index (indexer) over the segment's rows
        vectors.safetensors the float vectors: indptr, indices, values (+ dense)

Every upsert writes one new segment (published atomically), then one SQLite transaction
records the segment and points each doc id at its (segment, row). A doc's older row in
another segment becomes dead, a delete removes its catalog row. After a crash the catalog is
the truth: segment folders it does not name are removed on open, and the live rows of each
segment are the ones the catalog points at. Searches run over an immutable tuple of segments,
asking each for ``k`` plus its number of dead rows, so dead rows never cost a result.
:meth:`LiveIndex.merge` rewrites the smallest segments into one (``build_index`` over their
live float vectors, so nothing is quantised twice) when there are more than ``MAX_SEGMENTS``.
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer import Index, SparseBatch, build_index
from indexer.atomic import publish_dir, staging_dir

logger = logging.getLogger(__name__)

CATALOG = "catalog.sqlite"
SEGMENTS = "segments"
VECTORS = "vectors.safetensors"
MAX_SEGMENTS = 16
MERGE_COUNT = 8

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS segments (seq INTEGER PRIMARY KEY, rows INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS docs (
    id TEXT PRIMARY KEY, seg INTEGER NOT NULL, row INTEGER NOT NULL, text TEXT, metadata TEXT
);
CREATE INDEX IF NOT EXISTS docs_seg ON docs (seg);
"""


@dataclass(frozen=True)
class IndexSpec:
    """What an index's vectors are: the models that made them and their shapes."""

    sparse_model: str
    vocab_size: int
    vocab_hash: str
    dense_model: str | None = None
    dense_dim: int | None = None


@dataclass(frozen=True)
class StoredDoc:
    id: str
    text: str | None
    metadata: dict | None


class Segment:
    """One immutable segment and the liveness of its rows (changed under the index's lock)."""

    def __init__(self, seq: int, path: Path, live_rows: np.ndarray) -> None:
        from safetensors import safe_open

        self.seq = seq
        self.path = path
        self.sparse = Index.open(path / "sparse")
        with safe_open(str(path / VECTORS), framework="numpy") as f:
            self.indptr = f.get_tensor("indptr")
            names = set(f.keys())
            self.dense = f.get_tensor("dense") if "dense" in names else None
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
        from safetensors import safe_open

        lo, hi = int(self.indptr[row]), int(self.indptr[row + 1])
        with safe_open(str(self.path / VECTORS), framework="numpy") as f:
            return f.get_slice("indices")[lo:hi], f.get_slice("values")[lo:hi]

    def live_vectors(self) -> tuple[list[str], SparseBatch, np.ndarray | None]:
        """Ids, float sparse rows and dense rows of the live rows, in row order."""
        from safetensors.numpy import load_file

        t = load_file(str(self.path / VECTORS))
        rows = np.flatnonzero(self.live)
        ids = [self.sparse.lexicon[int(r)] for r in rows]
        lengths = np.diff(t["indptr"].astype(np.int64))
        keep = np.repeat(self.live, lengths)
        batch = SparseBatch(
            np.concatenate([[0], np.cumsum(lengths[rows])]).astype(np.uint64),
            t["indices"][keep],
            t["values"][keep],
        )
        return ids, batch, None if self.dense is None else t["dense"][rows]


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

    # -- opening -----------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | Path, spec: IndexSpec) -> LiveIndex:
        """A new empty index; refuses an existing folder."""
        path = Path(path)
        if path.exists():
            raise FileExistsError(f"{path} exists")
        staged = staging_dir(path)
        try:
            (staged / SEGMENTS).mkdir()
            db = sqlite3.connect(staged / CATALOG)
            with db:
                db.executescript(_SCHEMA)
                db.execute("INSERT INTO settings VALUES ('spec', ?)", (json.dumps(spec.__dict__),))
            db.close()
            publish_dir(staged, path, overwrite=False)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        return cls.open(path)

    @classmethod
    def open(cls, path: str | Path) -> LiveIndex:
        """Open the last committed state; removes segment folders the catalog does not name."""
        path = Path(path)
        if not (path / CATALOG).is_file():
            raise FileNotFoundError(f"{path}: no {CATALOG}; not a live index")
        db = sqlite3.connect(path / CATALOG, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        row = db.execute("SELECT value FROM settings WHERE key='spec'").fetchone()
        if row is None:
            raise ValueError(f"{path}: catalog without settings")
        spec = IndexSpec(**json.loads(row[0]))
        segments = []
        named = set()
        for seq, rows in db.execute("SELECT seq, rows FROM segments ORDER BY seq").fetchall():
            live = np.array([r for (r,) in db.execute("SELECT row FROM docs WHERE seg=?", (seq,))], dtype=np.int64)
            seg = Segment(seq, path / SEGMENTS / _seg_name(seq), live)
            if seg.rows != rows:
                raise ValueError(f"{seg.path}: {seg.rows} rows, the catalog says {rows}")
            segments.append(seg)
            named.add(_seg_name(seq))
        for folder in (path / SEGMENTS).iterdir():
            if folder.name not in named:
                logger.warning("%s: removing %s, which no committed change names", path, folder.name)
                shutil.rmtree(folder, ignore_errors=True)
        return cls(path, db, spec, tuple(segments))

    def close(self) -> None:
        with self._write, self._read:
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
            rows = _select_docs(self._db, "id, text, metadata", ids)
        return {d: StoredDoc(d, text, None if meta is None else json.loads(meta)) for d, text, meta in rows}

    def locate(self, doc_id: str) -> tuple[Segment, int] | None:
        with self._read:
            row = self._db.execute("SELECT seg, row FROM docs WHERE id=?", (doc_id,)).fetchone()
        if row is None:
            return None
        for seg in self._segments:
            if seg.seq == row[0]:
                return seg, int(row[1])
        return None

    def search_sparse(self, indices: np.ndarray, values: np.ndarray, k: int) -> tuple[list[tuple[str, float]], int]:
        """Top-``k`` live documents by our index's score, and the postings scored."""
        hits: list[tuple[float, str]] = []
        postings = 0
        query = SparseBatch(np.array([0, len(indices)], np.uint64), indices, values)
        for seg in self._segments:
            if seg.rows == seg.dead:
                continue
            res = seg.sparse.search_batch(query, k=k + seg.dead, threads=1)
            postings += int(res.postings[0])
            n = int(res.counts[0])
            for d, s in zip(res.docs[0, :n].tolist(), res.scores[0, :n].tolist()):
                if seg.live[d]:
                    hits.append((s, seg.sparse.lexicon[d]))
        hits.sort(key=lambda h: (-h[0], h[1]))
        return [(d, s) for s, d in hits[:k]], postings

    def search_dense(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        """Top-``k`` live documents by inner product with ``vector`` (exact)."""
        if self.spec.dense_dim is None:
            raise ValueError(f"index {self.path.name} has no dense vectors")
        hits: list[tuple[float, str]] = []
        for seg in self._segments:
            if seg.dense is None or seg.rows == seg.dead:
                continue
            scores = seg.dense @ vector
            scores[~seg.live] = -np.inf
            top = np.argsort(-scores, kind="stable")[: min(k, seg.rows - seg.dead)]
            hits += [(float(scores[r]), seg.sparse.lexicon[int(r)]) for r in top]
        hits.sort(key=lambda h: (-h[0], h[1]))
        return [(d, s) for s, d in hits[:k]]

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
        sparse = SparseBatch(*sparse).validated(self.spec.vocab_size, what="documents")
        if sparse.num_rows != n or len(set(ids)) != n:
            raise ValueError("ids must be unique and match the sparse rows")
        if self.spec.dense_dim is not None:
            if dense is None or dense.shape != (n, self.spec.dense_dim) or dense.dtype != np.float32:
                raise ValueError(f"this index needs float32 dense vectors of shape ({n}, {self.spec.dense_dim})")
            if not np.isfinite(dense).all():
                raise ValueError("dense vectors must be finite")
        elif dense is not None:
            raise ValueError("this index has no dense vectors")
        texts = list(texts) if texts is not None else [None] * n
        metadata = list(metadata) if metadata is not None else [None] * n
        with self._write:
            seq = self._next_seq()
            seg = self._write_segment(seq, [(list(ids), sparse, dense)])
            with self._transaction() as db:
                moved = _select_docs(db, "id, seg, row", ids)
                db.execute("INSERT INTO segments VALUES (?, ?)", (seq, n))
                db.executemany(
                    "INSERT OR REPLACE INTO docs VALUES (?, ?, ?, ?, ?)",
                    [
                        (d, seq, r, t, None if m is None else json.dumps(m))
                        for r, (d, t, m) in enumerate(zip(ids, texts, metadata))
                    ],
                )
            self._segments = (*self._segments, seg)
            self._kill(moved)
            self._drop_empty()
        return n

    def delete(self, ids: Sequence[str]) -> list[str]:
        """Delete documents; returns the ids that were not there."""
        with self._write:
            with self._transaction() as db:
                moved = _select_docs(db, "id, seg, row", ids)
                db.executemany("DELETE FROM docs WHERE id=?", [(d,) for d in ids])
            self._kill(moved)
            found = {d for d, _, _ in moved}
            self._drop_empty()
        return [d for d in ids if d not in found]

    def merge(self, max_segments: int = MAX_SEGMENTS, count: int = MERGE_COUNT) -> bool:
        """Rewrite the ``count`` smallest segments into one when there are more than ``max_segments``.
        The rewrite runs beside searches and writes; the commit re-checks every moved doc."""
        segs = sorted(self._segments, key=lambda s: s.rows - s.dead)
        if len(segs) <= max_segments:
            return False
        chosen = segs[:count]
        parts = [seg.live_vectors() for seg in chosen]
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
        for s in chosen:
            shutil.rmtree(s.path, ignore_errors=True)
        logger.info("%s: merged %d segments into %s (%d docs)", self.path, len(chosen), seg.path.name, seg.rows)
        return True

    # -- internals ---------------------------------------------------------------------------------

    def _next_seq(self) -> int:
        """A fresh segment number (call under the write lock)."""
        self._seq += 1
        return self._seq

    def _write_segment(self, seq: int, parts: Iterable[tuple[list[str], SparseBatch, np.ndarray | None]]) -> Segment:
        from safetensors.numpy import save_file

        parts = list(parts)
        target = self.path / SEGMENTS / _seg_name(seq)
        staged = staging_dir(target)
        try:
            build_index(
                staged / "sparse",
                lambda: ((ids, batch) for ids, batch, _ in parts),
                vocab_size=self.spec.vocab_size,
                model_id=self.spec.sparse_model,
                vocab_hash=self.spec.vocab_hash,
            )
            batch = SparseBatch.concat([b for _, b, _ in parts])
            tensors = {"indptr": batch.indptr, "indices": batch.indices, "values": batch.values}
            if self.spec.dense_dim is not None:
                tensors["dense"] = np.concatenate([d for _, _, d in parts]).astype(np.float32)
            save_file(tensors, str(staged / VECTORS))
            publish_dir(staged, target, overwrite=False)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
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


def _select_docs(db: sqlite3.Connection, columns: str, ids: Sequence[str]) -> list[tuple]:
    """``columns`` of the catalog rows of ``ids`` (in chunks under SQLite's variable limit)."""
    rows: list[tuple] = []
    for i in range(0, len(ids), 500):
        chunk = list(ids[i : i + 500])
        marks = ",".join("?" * len(chunk))
        rows += db.execute(f"SELECT {columns} FROM docs WHERE id IN ({marks})", chunk).fetchall()
    return rows


def _seg_name(seq: int) -> str:
    return f"seg-{seq:06d}"
