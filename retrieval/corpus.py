"""Streaming readers for the files users bring: corpora, queries and qrels.

Formats (``fmt``):
- ``beir``: JSON lines (``.jsonl`` or ``.jsonl.gz``) with ``_id``, ``title``, ``text``;
- ``jsonl``: JSON lines with configurable id and text fields (text fields are joined by a space);
- ``tsv``: MS MARCO style ``id<TAB>text`` lines (``.tsv`` or ``.tsv.gz``).

A malformed record (bad JSON, a missing or empty id, a non-string text, a wrong column count)
is skipped and reported with its line number; it never stops the stream. Records are small typed
tuples.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

logger = logging.getLogger(__name__)

FORMATS = ("beir", "jsonl", "tsv")


class Doc(NamedTuple):
    id: str
    text: str
    metadata: dict | None = None  # a JSON record's "metadata" object, when it has one (filters search on it)


class Problem(NamedTuple):
    line: int
    reason: str


@dataclass
class ReadReport:
    """What a reader skipped: problems (the first ``keep`` with line numbers) and their count."""

    path: str
    keep: int = 100
    log: bool = True
    skipped: int = 0
    problems: list[Problem] = field(default_factory=list)

    def add(self, line: int, reason: str) -> None:
        self.skipped += 1
        if len(self.problems) < self.keep:
            self.problems.append(Problem(line, reason))
        if self.log and self.skipped <= 10:
            logger.warning("%s:%d: skipped: %s", self.path, line, reason)


def open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="strict", newline="")
    return open(path, encoding="utf-8", errors="strict", newline="")


def guess_format(path: Path) -> str:
    name = path.name.removesuffix(".gz")
    if name.endswith(".tsv"):
        return "tsv"
    if name.endswith((".jsonl", ".json")):
        return "beir"
    raise ValueError(f"{path}: cannot tell the format from the name; pass fmt= one of {FORMATS}")


def _lines(path: Path, report: ReadReport) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their numbers; a line that is not UTF-8 is reported and skipped alone."""
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                report.add(n, f"not UTF-8 ({e.reason} at byte {e.start})")
                continue
            if line.strip():
                yield n, line


def read_texts(path: str | Path, ids: set[str], **reader: Any) -> dict[str, str]:
    """The texts of the documents ``ids``, read from the corpus until all are found: what a hit list shows beside
    its ids. ``reader``: read_docs' format options."""
    texts: dict[str, str] = {}
    if ids:
        for doc in read_docs(path, report=ReadReport(str(path), log=False), **reader):
            if doc.id in ids:
                texts[doc.id] = doc.text
                if len(texts) == len(ids):
                    break
    return texts


def read_docs(
    path: str | Path,
    *,
    fmt: str | None = None,
    id_field: str = "_id",
    text_fields: tuple[str, ...] = ("title", "text"),
    report: ReadReport | None = None,
) -> Iterator[Doc]:
    """Yield the documents (or queries) of a file, skipping and reporting malformed records."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    fmt = fmt or guess_format(path)
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, not {fmt!r}")
    report = report if report is not None else ReadReport(str(path))
    if fmt == "tsv":
        for n, line in _lines(path, report):
            parts = line.rstrip("\r\n").split("\t")
            if len(parts) < 2 or not parts[0].strip():
                report.add(n, f"expected 'id<TAB>text', got {len(parts)} column(s)")
                continue
            yield Doc(parts[0].strip(), " ".join(p for p in parts[1:] if p).strip())
        return
    for n, line in _lines(path, report):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            report.add(n, f"bad JSON: {e.msg} at column {e.colno}")
            continue
        if not isinstance(rec, dict):
            report.add(n, f"expected a JSON object, got {type(rec).__name__}")
            continue
        doc_id = rec.get(id_field)
        if isinstance(doc_id, int) and not isinstance(doc_id, bool):
            doc_id = str(doc_id)
        if not isinstance(doc_id, str) or not doc_id.strip():
            report.add(n, f"missing or empty id field {id_field!r}")
            continue
        parts = []
        for k in text_fields:
            v = rec.get(k)
            if v is None:
                continue
            if not isinstance(v, str):
                report.add(n, f"field {k!r} is {type(v).__name__}, not a string")
                parts = None
                break
            if v:
                parts.append(v)
        if parts is None:
            continue
        meta = rec.get("metadata")
        yield Doc(doc_id.strip(), " ".join(parts).strip(), meta if isinstance(meta, dict) and meta else None)


def find(directory: str | Path, name: str) -> Path:
    """``<name>.jsonl[.gz]`` or ``<name>.tsv[.gz]`` inside a dataset folder."""
    directory = Path(directory)
    for suffix in (".jsonl.gz", ".jsonl", ".tsv.gz", ".tsv"):
        cand = directory / f"{name}{suffix}"
        if cand.exists():
            return cand
    raise FileNotFoundError(
        f"no {name}.jsonl[.gz] or {name}.tsv[.gz] in {directory}: point at a BEIR dataset folder "
        "(scifact ships in ../shared/data/scifact)"
    )


def read_queries(path: str | Path, fmt: str | None = None) -> dict[str, str]:
    """Query id -> text (BEIR ``queries.jsonl`` or MS MARCO ``queries.tsv``)."""
    return {d.id: d.text for d in read_docs(path, fmt=fmt, text_fields=("text",))}


def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """Query id -> doc id -> relevance, from BEIR ``qrels/<split>.tsv`` (header
    ``query-id corpus-id score``) or TREC qrels (``qid 0 docid rel``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such qrels file")
    qrels: dict[str, dict[str, int]] = {}
    with open_text(path) as f:
        for n, line in enumerate(f, 1):
            row = line.split()
            if not row:
                continue
            if len(row) not in (3, 4):
                raise ValueError(f"{path}:{n}: expected 3 (BEIR) or 4 (TREC) columns, got {len(row)}")
            qid, did, rel = (row[0], row[1], row[2]) if len(row) == 3 else (row[0], row[2], row[3])
            try:
                qrels.setdefault(qid, {})[did] = int(rel)
            except ValueError:
                if n == 1:  # BEIR's header line
                    continue
                raise ValueError(f"{path}:{n}: relevance {rel!r} is not an integer") from None
    return qrels
