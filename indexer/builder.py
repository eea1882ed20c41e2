"""IndexBuilder: the writer. Streams CSR batches into the native builder and
publishes a complete index directory atomically on commit."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from . import _core
from .atomic import publish_dir, remove_stale_staging, staging_dir, write_bytes
from .csr import SparseBatch
from .errors import IndexExistsError
from .lexicon import encode_lexicon
from .manifest import LEXICON, MANIFEST, POSTINGS, Manifest, sha256_file

logger = logging.getLogger(__name__)


class IndexBuilder:
    """Build an index directory from batches of documents.

    >>> with IndexBuilder("idx", vocab_size=30522) as b:   # doctest: +SKIP
    ...     b.add(["d1", "d2"], batch)
    # leaving the block without an exception commits; an exception discards everything

    Nothing is written until :meth:`commit`; the directory appears complete or not at all.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        vocab_size: int,
        model_id: str | None = None,
        vocab_hash: str | None = None,
        overwrite: bool = False,
    ) -> None:
        if not isinstance(vocab_size, int) or not 0 < vocab_size < 2**32:
            raise ValueError(f"vocab_size must be a positive int below 2**32, got {vocab_size!r}")
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise IndexExistsError(f"{self.path} exists; pass overwrite=True to replace it")
        self.vocab_size = vocab_size
        self.model_id = model_id
        self.vocab_hash = vocab_hash
        self.overwrite = overwrite
        self._core = _core.Builder(vocab_size)
        self._ids: list[str] = []
        self._seen: set[str] = set()
        self._done = False

    @property
    def num_docs(self) -> int:
        return len(self._ids)

    def add(self, doc_ids: Sequence[str], batch: SparseBatch) -> None:
        """Append documents; the whole batch is validated before anything is added."""
        if self._done:
            raise RuntimeError("builder already committed or aborted")
        batch = SparseBatch(*batch).validated(self.vocab_size, what="documents")
        if len(doc_ids) != batch.num_rows:
            raise ValueError(f"{len(doc_ids)} doc ids for {batch.num_rows} rows")
        fresh: set[str] = set()
        for d in doc_ids:
            if not isinstance(d, str) or not d:
                raise ValueError(f"doc ids must be non-empty strings, got {d!r}")
            if d in self._seen or d in fresh:
                raise ValueError(f"duplicate document id {d!r}")
            fresh.add(d)
        self._core.add_batch(*batch)
        self._ids.extend(doc_ids)
        self._seen |= fresh

    def commit(self) -> Manifest:
        """Write postings, lexicon and manifest into a staging directory and publish it."""
        if self._done:
            raise RuntimeError("builder already committed or aborted")
        self._done = True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staged = staging_dir(self.path)
        try:
            scale = self._core.write(str(staged / POSTINGS))
            write_bytes(staged / LEXICON, encode_lexicon(self._ids))
            files = {
                POSTINGS: {"bytes": (staged / POSTINGS).stat().st_size},
                LEXICON: {"bytes": (staged / LEXICON).stat().st_size, "sha256": sha256_file(staged / LEXICON)},
            }
            manifest = Manifest(
                vocab_size=self.vocab_size,
                num_docs=self._core.num_docs,
                num_postings=self._core.num_postings,
                impact_scale=scale,
                model_id=self.model_id,
                vocab_hash=self.vocab_hash,
                files=files,
            )
            write_bytes(staged / MANIFEST, manifest.to_json())
            publish_dir(staged, self.path, overwrite=self.overwrite)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        remove_stale_staging(self.path)
        logger.info("built %s: %d docs, %d postings", self.path, manifest.num_docs, manifest.num_postings)
        return manifest

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
