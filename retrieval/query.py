"""The query model of the engine: queries and documents as given to it, its results and its errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


class UnknownIndexError(KeyError):
    pass


class UnknownSnapshotError(KeyError):
    pass


class IndexFailedError(RuntimeError):
    """An index that could not be opened (a damaged file); the engine serves the others."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"index {name!r} is damaged and was not opened ({reason}); delete it and restore a snapshot")
        self.name, self.reason = name, reason


@dataclass(frozen=True)
class Pruning:
    """Query term pruning, an approximate search: keep a query's heaviest terms, at most ``max_terms`` of them and
    only as many as reach ``mass`` of its total weight (``indexer.csr.prune_terms``)."""

    max_terms: int | None = None
    mass: float | None = None


class QueryError(ValueError):
    """A query that cannot be run as given (unknown token, empty vector, missing dense part)."""


@dataclass
class Query:
    """One query: text (encoded with the index's models) or given vectors."""

    text: str | None = None
    terms: dict[str, float] | None = None  # token -> weight, in the sparse model's vocabulary
    indices: Sequence[int] | None = None
    values: Sequence[float] | None = None
    dense: Sequence[float] | None = None
    vocab_hash: str | None = None  # of the model that made indices/terms, when the caller knows it
    prune: Pruning | None = None  # approximate: search only the query's heaviest terms
    filter: dict | None = None  # on the documents' metadata (retrieval.filters)
    algorithm: str | None = None  # how the index visits the postings (indexer.index.ALGORITHMS); None: the default


def vocabulary_mismatch(name: str, index_hash: str, given: str) -> str:
    return (
        f"index {name!r} holds vectors over vocabulary {index_hash}; these come from {given}: "
        "term ids would mean other tokens"
    )


@dataclass
class NewDocument:
    """A document to upsert: its text (encoded here when no vectors are given), metadata, and optionally vectors."""

    id: str
    text: str | None = None
    metadata: dict | None = None
    indices: Sequence[int] | None = None  # the sparse vector, in the index's vocabulary
    values: Sequence[float] | None = None
    dense: Sequence[float] | None = None


@dataclass
class SearchResult:
    hits: list[tuple[str, float]]
    query_nnz: int = 0
    postings: int = 0
    encode_ms: float = 0.0
    search_ms: float = 0.0
    sparse_query: tuple[np.ndarray, np.ndarray] | None = None  # term ids, weights (sparse and hybrid)


@dataclass
class Contribution:
    term: int
    token: str
    query_weight: float
    doc_weight: float
    product: float
