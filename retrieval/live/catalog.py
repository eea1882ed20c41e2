"""The catalog: one SQLite file per index, the commit point (settings, live segments, one row per live doc)."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence

CATALOG = "catalog.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS segments (seq INTEGER PRIMARY KEY, rows INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS docs (
    id TEXT PRIMARY KEY, seg INTEGER NOT NULL, row INTEGER NOT NULL, text TEXT, metadata TEXT, crc INTEGER
);
CREATE INDEX IF NOT EXISTS docs_seg ON docs (seg);
"""


class DamagedCatalogError(RuntimeError):
    """A catalog row whose content no longer matches the checksum written with it."""


def row_checksum(doc_id: str, text: str | None, metadata: str | None) -> int:
    """A signed 64-bit checksum (SQLite's INTEGER) of what a row stores: id, text and metadata JSON. The row's
    place (segment, row) is left out: a merge moves it without rewriting the content."""
    h = hashlib.blake2b(digest_size=8)
    for part in (doc_id, text, metadata):
        h.update(b"\x00" if part is None else b"\x01" + part.encode("utf-8") + b"\xff")
    return int.from_bytes(h.digest(), "little", signed=True)


def check_row(doc_id: str, text: str | None, metadata: str | None, crc: int | None) -> None:
    """Raise DamagedCatalogError when a row's content does not match its checksum (rows written before the
    checksums existed have none and pass)."""
    if crc is not None and row_checksum(doc_id, text, metadata) != crc:
        raise DamagedCatalogError(
            f"the catalog row of document {doc_id!r} does not match its checksum; the index is damaged "
            "(restore a snapshot)"
        )


def add_checksums(db: sqlite3.Connection) -> None:
    """Give a catalog written before row checksums existed its ``crc`` column (old rows stay unchecked)."""
    columns = {r[1] for r in db.execute("PRAGMA table_info(docs)")}
    if "crc" not in columns:
        db.execute("ALTER TABLE docs ADD COLUMN crc INTEGER")


def storable(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8 (no lone surrogates): what the catalog and JSON replies need."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def select_docs(db: sqlite3.Connection, columns: str, ids: Sequence[str]) -> list[tuple]:
    """``columns`` of the catalog rows of ``ids`` (in chunks under SQLite's variable limit). An id that is not
    valid UTF-8 (a lone surrogate) cannot have been stored, so it matches nothing."""
    ids = [i for i in ids if storable(i)]
    rows: list[tuple] = []
    for i in range(0, len(ids), 500):
        chunk = list(ids[i : i + 500])
        marks = ",".join("?" * len(chunk))
        rows += db.execute(f"SELECT {columns} FROM docs WHERE id IN ({marks})", chunk).fetchall()
    return rows
