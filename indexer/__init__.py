"""Inverted index over learned sparse vectors, with a native SIMD scoring core.

Public API: :class:`IndexBuilder` and :func:`build_index` (writers), :class:`Index` (reader),
:class:`SparseBatch` (CSR input) and the errors. ``indexer._core`` is private, and it is loaded
on first use of a writer or the reader: the encoders (which only need :class:`SparseBatch`)
import without the compiled module, e.g. on a training machine.
"""

from __future__ import annotations

from typing import Any

from .csr import SparseBatch
from .errors import CorruptIndexError, IndexExistsError, VocabularyMismatchError

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

_LAZY = {"IndexBuilder": "builder", "build_index": "builder", "BatchResults": "index", "Hit": "index", "Index": "index"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
