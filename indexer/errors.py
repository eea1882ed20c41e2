"""Exceptions raised by the index."""

from __future__ import annotations


class CorruptIndexError(ValueError):
    """The index on disk is incomplete, truncated, corrupted or of another format version."""


class IndexExistsError(FileExistsError):
    """A build would replace an existing index without ``overwrite=True``."""


class VocabularyMismatchError(ValueError):
    """Queries were encoded over another vocabulary than the one the index was built with."""
