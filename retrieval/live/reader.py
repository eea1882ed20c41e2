"""LiveReader: a read replica of a live index, in another process (or on another node that reaches its folder).

    reader = LiveReader.open("runs/live/shard-00")     # beside the shard's one writer (LiveIndex)
    reader.search_sparse_batch(queries, k=10)          # sees every write committed before the call

The writer commits each change to the catalog (SQLite in WAL mode) before it returns, and segments never change
once written. So a reader needs no message from the writer: before every read it asks its catalog connection
whether another connection committed since its last look (``PRAGMA data_version``, a few µs) and, if so, reads the
catalog's segments and live rows in one read transaction, keeps the segments it already has memory-mapped (with
their new live rows) and opens the new ones. A segment that fails to open (its folder gone, or half removed) while
the catalog has moved on since the snapshot makes it look again: the merge that removed it committed first. With
no commit since, the failure is damage, and it is raised. The reader never writes: it neither
migrates the catalog nor removes folders (the writer's ``open`` does both), and upsert, delete and merge raise.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .index import LiveIndex, connect, read_segments
from .segment import Segment

logger = logging.getLogger(__name__)

ATTEMPTS = 20  # snapshots tried while merges keep removing the folders of the one before


class ReadOnlyError(PermissionError):
    """A write sent to a read replica."""


class LiveReader(LiveIndex):
    """A live index opened for reading only; every read first catches up with the last commit (``refresh``)."""

    @classmethod
    def open(cls, path: str | Path) -> LiveReader:
        path = Path(path)
        db, spec = connect(path)
        if "crc" not in {r[1] for r in db.execute("PRAGMA table_info(docs)")}:
            db.close()
            raise ValueError(f"{path}: an old catalog; open it once with its writer (LiveIndex.open) first")
        reader = cls(path, db, spec, ())
        reader._version = None
        reader.refresh()
        return reader

    def refresh(self) -> bool:
        """Catch up with the catalog's last commit; returns whether anything changed."""
        for _ in range(ATTEMPTS):
            with self._read:
                version = self._db.execute("PRAGMA data_version").fetchone()[0]
                if version == self._version:
                    return False
                self._db.execute("BEGIN")  # one read snapshot of the segments and their live rows
                failed: Exception | None = None
                try:
                    segments = read_segments(self._db, self.path, self._segments)
                except (OSError, ValueError) as e:  # gone, or half removed (CorruptIndexError, DamagedVectorsError)
                    failed = e
                finally:
                    self._db.execute("COMMIT")
                moved_on = failed is not None and self._db.execute("PRAGMA data_version").fetchone()[0] != version
            if failed is not None:
                if not moved_on:  # no commit since the snapshot: the segment it names is damaged, not being removed
                    raise failed
                logger.info("%s: %s; a merge removed it after the snapshot, reading the catalog again", self.path,
                            failed)  # fmt: skip
                continue
            self._segments = segments
            self._version = version
            return True
        raise RuntimeError(f"{self.path}: no stable snapshot in {ATTEMPTS} tries (merges removing segments)")

    # every read catches up first
    @property
    def segments(self) -> tuple[Segment, ...]:
        self.refresh()
        return self._segments

    @property
    def num_docs(self) -> int:
        self.refresh()
        return super().num_docs

    def get(self, ids: Any) -> Any:
        self.refresh()
        return super().get(ids)

    def locate(self, doc_id: str) -> Any:
        self.refresh()
        return super().locate(doc_id)

    def stats(self) -> Any:
        self.refresh()
        return super().stats()

    def search_sparse_batch(
        self, queries: Any, k: int, threads: int = 1, filter: Any = None, algorithm: str | None = None
    ) -> Any:
        self.refresh()
        return super().search_sparse_batch(queries, k, threads, filter, algorithm)

    def search_dense_batch(self, vectors: Any, k: int, filter: Any = None) -> Any:
        self.refresh()
        return super().search_dense_batch(vectors, k, filter)

    # a replica never writes
    def upsert(self, *args: Any, **kwargs: Any) -> int:
        raise ReadOnlyError(f"{self.path}: a read replica; send upserts to the index's writer")

    def delete(self, *args: Any, **kwargs: Any) -> list[str]:
        raise ReadOnlyError(f"{self.path}: a read replica; send deletes to the index's writer")

    def merge(self, *args: Any, **kwargs: Any) -> bool:
        raise ReadOnlyError(f"{self.path}: a read replica; merges are the writer's")

    def copy_to(self, folder: Path) -> int:
        raise ReadOnlyError(f"{self.path}: a read replica; snapshots are taken by the writer")
