"""Inverted index over learned sparse vectors, with a native SIMD scoring core.

Public API: :class:`IndexBuilder` and :func:`build_index` (writers), :class:`Index` (reader),
:class:`SparseBatch` (CSR input) and the errors. ``indexer._core`` is private.
"""

from .builder import IndexBuilder, build_index
from .csr import SparseBatch
from .errors import CorruptIndexError, IndexExistsError, VocabularyMismatchError
from .index import BatchResults, Hit, Index

__all__ = [
    "BatchResults",
    "CorruptIndexError",
    "Hit",
    "Index",
    "IndexBuilder",
    "IndexExistsError",
    "SparseBatch",
    "VocabularyMismatchError",
    "build_index",
]
