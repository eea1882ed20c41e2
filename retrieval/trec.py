"""TREC runs: ``qid Q0 docid rank score tag``, ranks from 1, best first. The one writer and reader of the format,
for the CLI, eval and the service's batch search."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from indexer.atomic import write_bytes

Run = dict[str, dict[str, float]]


def _check_tag(tag: str) -> None:
    if not tag or any(c.isspace() for c in tag):
        raise ValueError(f"the run tag must be one word, got {tag!r}")


def format_run(run: Run, tag: str) -> str:
    """Every query of ``run`` (sorted by id), its documents ranked by score (ties by doc id)."""
    _check_tag(tag)
    pages = []
    for qid in sorted(run):
        ranked = sorted(run[qid].items(), key=lambda kv: (-kv[1], kv[0]))
        pages.append((qid, tag, [(r, d, s) for r, (d, s) in enumerate(ranked, 1)]))
    return format_ranked(pages)


def format_ranked(pages: Iterable[tuple[str, str, Iterable[tuple[int, str, float]]]]) -> str:
    """Lines for already ranked hits: (query id, tag, [(rank, doc id, score), ...]) in the order given, e.g. a
    page of results whose ranks start after an offset."""
    lines = []
    for qid, tag, hits in pages:
        _check_tag(tag)
        lines.extend(f"{qid} Q0 {d} {r} {s:.6f} {tag}" for r, d, s in hits)
    return "\n".join(lines) + ("\n" if lines else "")


def write_run(path: str | os.PathLike[str], run: Run, tag: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, format_run(run, tag).encode())


def read_run(path: str | os.PathLike[str]) -> Run:
    run: Run = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise ValueError(f"{path}:{n}: a TREC run line has 6 columns, got {len(parts)}")
            try:
                run.setdefault(parts[0], {})[parts[2]] = float(parts[4])
            except ValueError:
                raise ValueError(f"{path}:{n}: score {parts[4]!r} is not a number") from None
    return run
