"""The catalog: one SQLite file per index, the commit point (settings, live segments, one row per live doc)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

CATALOG = "catalog.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS segments (seq INTEGER PRIMARY KEY, rows INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS docs (
    id TEXT PRIMARY KEY, seg INTEGER NOT NULL, row INTEGER NOT NULL, text TEXT, metadata TEXT
);
CREATE INDEX IF NOT EXISTS docs_seg ON docs (seg);
"""


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
