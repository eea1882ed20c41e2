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


class Span(NamedTuple):
    """Where a run of records starts in a file: its line number and byte offset (in the uncompressed text)."""

    line: int = 1
    byte: int = 0


START = Span()  # the beginning of a file


def _lines(path: Path, report: ReadReport, start: Span = START) -> Iterator[tuple[int, int, str]]:
    """Non-blank lines with their numbers and byte offsets, from ``start`` on (a plain file seeks there; a gzip
    file is read from its beginning and the lines before are skipped); a line that is not UTF-8 is reported and
    skipped alone."""
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
        offset, first = 0, 1
        if start.byte and path.suffix != ".gz":
            f.seek(start.byte)
            offset, first = start.byte, start.line
        for n, raw in enumerate(f, first):
            at, offset = offset, offset + len(raw)
            if n < start.line:
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                report.add(n, f"not UTF-8 ({e.reason} at byte {e.start})")
                continue
            if line.strip():
                yield n, at, line


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
    start: Span = START,
) -> Iterator[Doc]:
    """Yield the documents (or queries) of a file, skipping and reporting malformed records; from ``start`` on
    (a Span that ``read_spans`` gave) when the file is read in parts."""
    for _, doc in read_spans(path, fmt=fmt, id_field=id_field, text_fields=text_fields, report=report, start=start):
        yield doc


def read_spans(
    path: str | Path,
    *,
    fmt: str | None = None,
    id_field: str = "_id",
    text_fields: tuple[str, ...] = ("title", "text"),
    report: ReadReport | None = None,
    start: Span = START,
) -> Iterator[tuple[Span, Doc]]:
    """read_docs' documents, each with the Span where its record starts (to read the file in parts later)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    fmt = fmt or guess_format(path)
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, not {fmt!r}")
    report = report if report is not None else ReadReport(str(path))
    if fmt == "tsv":
        for n, at, line in _lines(path, report, start):
            parts = line.rstrip("\r\n").split("\t")
            if len(parts) < 2 or not parts[0].strip():
                report.add(n, f"expected 'id<TAB>text', got {len(parts)} column(s)")
                continue
            yield Span(n, at), Doc(parts[0].strip(), " ".join(p for p in parts[1:] if p).strip())
        return
    for n, at, line in _lines(path, report, start):
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
        meta = meta if isinstance(meta, dict) and meta else None
        yield Span(n, at), Doc(doc_id.strip(), " ".join(parts).strip(), meta)


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
