"""The writer: CSR batches in, a complete index directory published atomically.

Two ways in, one serializer (the native ``IndexWriter``) and one publishing step:

* :class:`IndexBuilder` takes batches as they come and holds their postings in
  memory until :meth:`IndexBuilder.commit`.
* :func:`build_index` takes documents that can be read more than once (encoded
  shards on disk) and inverts them in bounded memory: one pass counts, then one
  pass per range of terms holding at most ``max_postings`` postings. Both give
  byte-identical files for the same documents.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from . import _core
from .atomic import remove_stale_staging, staged, write_bytes
from .csr import SparseBatch, prune_rows
from .errors import IndexExistsError
from .lexicon import encode_lexicon
from .manifest import LEXICON, MANIFEST, POSTINGS, Manifest, sha256_file

logger = logging.getLogger(__name__)

#: Postings held in memory per pass of :func:`build_index` (8 bytes each: 256 MB).
MAX_POSTINGS = 32_000_000

Batches = Callable[[], Iterable[tuple[Sequence[str], SparseBatch]]]


class _DocIds:
    """Doc id strings in doc order; refuses empty, non-string and duplicate ids."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self._seen: set[str] = set()

    def check(self, doc_ids: Sequence[str], rows: int) -> set[str]:
        """Validate a batch's ids against each other and those taken; returns them as a set."""
        if len(doc_ids) != rows:
            raise ValueError(f"{len(doc_ids)} doc ids for {rows} rows")
        fresh: set[str] = set()
        for d in doc_ids:
            if not isinstance(d, str) or not d:
                raise ValueError(f"doc ids must be non-empty strings, got {d!r}")
            if d in self._seen or d in fresh:
                raise ValueError(f"duplicate document id {d!r}")
            fresh.add(d)
        return fresh

    def extend(self, doc_ids: Sequence[str], fresh: set[str]) -> None:
        self.ids.extend(doc_ids)
        self._seen |= fresh


class IndexBuilder:
    """Build an index directory from batches of documents, in memory.

    >>> with IndexBuilder("idx", vocab_size=30522) as b:   # doctest: +SKIP
    ...     b.add(["d1", "d2"], batch)
    # leaving the block without an exception commits; an exception discards everything

    Nothing is written until :meth:`commit`; the directory appears complete or not at all.
    For collections larger than memory use :func:`build_index`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        vocab_size: int,
        model_id: str | None = None,
        vocab_hash: str | None = None,
        overwrite: bool = False,
        doc_max_terms: int | None = None,
        doc_mass: float | None = None,
    ) -> None:
        self.path = _check_target(path, vocab_size, overwrite)
        self.pruning = _pruning(doc_max_terms, doc_mass)
        self.vocab_size = vocab_size
        self.model_id = model_id
        self.vocab_hash = vocab_hash
        self.overwrite = overwrite
        self._core = _core.Builder(vocab_size)
        self._ids = _DocIds()
        self._done = False

    @property
    def num_docs(self) -> int:
        return len(self._ids.ids)

    def add(self, doc_ids: Sequence[str], batch: SparseBatch) -> None:
        """Append documents; the whole batch is validated before anything is added."""
        if self._done:
            raise RuntimeError("builder already committed or aborted")
        batch = SparseBatch(*batch).validated(self.vocab_size, what="documents")
        fresh = self._ids.check(doc_ids, batch.num_rows)
        if self.pruning:
            batch = prune_rows(batch, **self.pruning)
        self._core.add_batch(*batch)
        self._ids.extend(doc_ids, fresh)

    def commit(self) -> Manifest:
        """Write postings, lexicon and manifest into a staging directory and publish it."""
        if self._done:
            raise RuntimeError("builder already committed or aborted")
        self._done = True
        core = self._core
        return _publish(
            self.path,
            lambda target: core.write(str(target)),
            ids=self._ids.ids,
            vocab_size=self.vocab_size,
            num_postings=core.num_postings,
            model_id=self.model_id,
            vocab_hash=self.vocab_hash,
            overwrite=self.overwrite,
            static_pruning=self.pruning,
        )

    def abort(self) -> None:
        self._done = True
        self._core = None

    def __enter__(self) -> IndexBuilder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        if exc_type is None and not self._done:
            self.commit()
        elif not self._done:
            self.abort()


def build_index(
    path: str | os.PathLike[str],
    batches: Batches,
    *,
    vocab_size: int,
    model_id: str | None = None,
    vocab_hash: str | None = None,
    overwrite: bool = False,
    max_postings: int = MAX_POSTINGS,
    doc_max_terms: int | None = None,
    doc_mass: float | None = None,
    max_weight: float | None = None,
) -> Manifest:
    """Build an index from documents read more than once, holding at most about
    ``max_postings`` postings (plus the doc ids and the block metadata) in memory.

    ``batches()`` must yield the same ``(doc_ids, SparseBatch)`` sequence on every
    call; a pass that sees other documents raises ``ValueError`` and nothing is
    published. A single term with more postings than ``max_postings`` gets a pass
    of its own.

    ``max_weight`` fixes the top of the 8-bit impact scale (weight / (max_weight / 255)); by default it is these
    documents' largest weight. Indexes that split one corpus pass the corpus-wide largest, so that every one scores
    a document exactly as a single index of the whole corpus would. It may not be below these documents' largest.
    """
    target = _check_target(path, vocab_size, overwrite)
    pruning = _pruning(doc_max_terms, doc_mass)
    if not isinstance(max_postings, int) or max_postings < 1:
        raise ValueError(f"max_postings must be a positive int, got {max_postings!r}")
    counter = _core.Builder(vocab_size, 0, 0)
    ids = _DocIds()
    for doc_ids, batch in batches():
        batch = SparseBatch(*batch).validated(vocab_size, what="documents")
        fresh = ids.check(doc_ids, batch.num_rows)
        if pruning:
            batch = prune_rows(batch, **pruning)
        counter.add_batch(*batch)
        ids.extend(doc_ids, fresh)
    top = counter.max_weight
    if max_weight is not None:
        if not isinstance(max_weight, (int, float)) or not np.isfinite(max_weight) or max_weight <= 0:
            raise ValueError(f"max_weight must be a positive finite number, got {max_weight!r}")
        if np.float32(max_weight) < np.float32(counter.max_weight):
            raise ValueError(f"max_weight {max_weight} is below these documents' largest weight {counter.max_weight}")
        top = float(np.float32(max_weight))
    df = counter.df()
    ranges = term_ranges(df, max_postings)
    logger.info(
        "%s: %d docs, %d postings, %d pass(es) of <= %d postings",
        target,
        counter.num_docs,
        counter.num_postings,
        len(ranges),
        max_postings,
    )

    def write(postings_path: Path) -> float:
        writer = _core.IndexWriter(str(postings_path), df, counter.num_docs, top)
        for k, (lo, hi) in enumerate(ranges):
            part = _core.Builder(vocab_size, lo, hi, df)
            start = 0
            for doc_ids, batch in batches():
                batch = SparseBatch(*batch).validated(vocab_size, what="documents")
                if list(doc_ids) != ids.ids[start : start + len(doc_ids)]:
                    raise ValueError(f"pass {k + 2} read other doc ids than the first pass at doc {start}")
                start += len(doc_ids)
                part.add_batch(*(prune_rows(batch, **pruning) if pruning else batch))
            writer.append(part)
            del part
            logger.info("%s: pass %d/%d wrote terms %d..%d", target, k + 1, len(ranges), lo, hi - 1)
        return writer.finish()

    return _publish(
        target,
        write,
        ids=ids.ids,
        vocab_size=vocab_size,
        num_postings=counter.num_postings,
        model_id=model_id,
        vocab_hash=vocab_hash,
        overwrite=overwrite,
        static_pruning=pruning,
    )


def _pruning(max_terms: int | None, mass: float | None) -> dict | None:
    """Static pruning settings, checked: {"max_terms": ..., "mass": ...} or None for none."""
    if max_terms is None and mass is None:
        return None
    if max_terms is not None and (not isinstance(max_terms, int) or isinstance(max_terms, bool) or max_terms < 1):
        raise ValueError(f"doc_max_terms must be a positive integer, got {max_terms!r}")
    if mass is not None and (not isinstance(mass, (int, float)) or not 0.0 < mass <= 1.0):
        raise ValueError(f"doc_mass must be in (0, 1], got {mass!r}")
    return {"max_terms": max_terms, "mass": None if mass is None else float(mass)}


def term_ranges(df: np.ndarray, max_postings: int) -> list[tuple[int, int]]:
    """Split terms 0..len(df)-1 into consecutive ranges of at most ``max_postings``
    postings each (a longer single term alone), each as long as it can be."""
    if len(df) == 0:
        return [(0, 0)]
    csum = np.cumsum(df, dtype=np.int64)
    ranges: list[tuple[int, int]] = []
    lo, base = 0, 0
    while lo < len(df):  # one searchsorted per range, not a Python step per term
        hi = max(int(np.searchsorted(csum, base + max_postings, side="right")), lo + 1)
        ranges.append((lo, hi))
        lo, base = hi, int(csum[hi - 1])
    return ranges


def _check_target(path: str | os.PathLike[str], vocab_size: int, overwrite: bool) -> Path:
    if not isinstance(vocab_size, int) or not 0 < vocab_size < 2**32:
        raise ValueError(f"vocab_size must be a positive int below 2**32, got {vocab_size!r}")
    target = Path(path)
    if target.exists() and not overwrite:
        raise IndexExistsError(f"{target} exists; pass overwrite=True to replace it")
    return target


def _publish(
    path: Path,
    write_postings: Callable[[Path], float],
    *,
    ids: list[str],
    vocab_size: int,
    num_postings: int,
    model_id: str | None,
    vocab_hash: str | None,
    overwrite: bool,
    static_pruning: dict | None = None,
) -> Manifest:
    """Write postings (by ``write_postings``), lexicon and manifest into a staging
    directory and publish it; on any failure nothing is published."""
    with staged(path, overwrite=overwrite) as work:
        scale = write_postings(work / POSTINGS)
        write_bytes(work / LEXICON, encode_lexicon(ids))
        files = {
            POSTINGS: {"bytes": (work / POSTINGS).stat().st_size},
            LEXICON: {"bytes": (work / LEXICON).stat().st_size, "sha256": sha256_file(work / LEXICON)},
        }
        manifest = Manifest(
            vocab_size=vocab_size,
            num_docs=len(ids),
            num_postings=num_postings,
            impact_scale=scale,
            model_id=model_id,
            vocab_hash=vocab_hash,
            files=files,
            static_pruning=static_pruning,
        )
        write_bytes(work / MANIFEST, manifest.to_json())
    remove_stale_staging(path)
    logger.info("built %s: %d docs, %d postings", path, manifest.num_docs, manifest.num_postings)
    return manifest
