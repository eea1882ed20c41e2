"""Request and response bodies (pydantic); limits that depend on settings are checked in the routes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from indexer.index import ALGORITHMS

Include = Literal["text", "metadata", "explanation"]


VOCAB_HASH = "the vocabulary hash /v1/encode returned with the vectors; refused unless it is the index's"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class FusionParams(Strict):
    method: Literal["rrf", "linear", "dbsf"] = "dbsf"
    weights: tuple[float, float] = Field((1.0, 1.0), description="sparse, dense", strict=False)  # a JSON array
    rrf_k: float = Field(60.0, gt=0, le=1e6)
    norm: Literal["minmax", "zscore"] = "minmax"


class QueryBody(Strict):
    """A query: ``query`` text (encoded with the index's models), or a sparse vector as a
    token -> weight map (``terms``) or as ``indices`` + ``values``; optionally a ``dense`` vector."""

    query: str | None = Field(None, max_length=10_000)
    terms: dict[str, float] | None = Field(None, max_length=4096)
    indices: list[int] | None = Field(None, max_length=65_536)
    values: list[float] | None = Field(None, max_length=65_536)
    dense: list[float] | None = Field(None, max_length=8192)
    vocab_hash: str | None = Field(
        None,
        max_length=128,
        description="the vocabulary hash /v1/encode returned with the vectors; refused if not the index's",
    )


class PruneParams(Strict):
    """Approximate search: only the query's heaviest terms are searched."""

    max_terms: int | None = Field(None, ge=1, le=65_536, description="at most this many of the heaviest terms")
    mass: float | None = Field(None, gt=0, le=1, description="the fewest heaviest terms holding this weight share")


class SearchRequest(QueryBody):
    mode: Literal["sparse", "dense", "hybrid"] = "sparse"
    top_k: int = Field(10, ge=1)
    offset: int = Field(0, ge=0)
    fusion: FusionParams | None = None
    include: list[Include] = Field(default_factory=list, max_length=3)
    prune: PruneParams | None = Field(None, description="query term pruning (approximate; off by default: exact)")
    algorithm: Literal[ALGORITHMS] | None = Field(  # type: ignore[valid-type]
        None,
        description="how the sparse index visits the postings: exhaustive, block_max, block_forward or auto; the "
        "same hits and scores whichever (exact), at another cost; unset: the service's LSR_SEARCH_ALGORITHM",
    )
    filter: dict[str, Any] | None = Field(
        None,
        description="only documents whose metadata match: {'field': F, 'eq': V} | {'field': F, 'in': [V, ...]} | "
        "{'field': F, 'gte'|'gt'|'lte'|'lt': N, ...} | {'and': [...]} | {'or': [...]} | {'not': {...}}; exact "
        "(applied inside scoring)",
    )


class TermContribution(BaseModel):
    term_id: int
    token: str
    query_weight: float
    doc_weight: float
    product: float


class Hit(BaseModel):
    id: str
    score: float
    text: str | None = None
    metadata: dict | None = None
    explanation: list[TermContribution] | None = None


class Usage(BaseModel):
    query_nnz: int
    postings_scored: int
    encode_ms: float
    search_ms: float


class SearchResponse(BaseModel):
    hits: list[Hit]
    took_ms: float
    usage: Usage


class BatchQuery(SearchRequest):
    id: str = Field(min_length=1, max_length=256, pattern=r"^\S+$")


class BatchSearchRequest(Strict):
    queries: list[BatchQuery] = Field(min_length=1)
    format: Literal["json", "trec"] = "json"


class BatchSearchResponse(BaseModel):
    results: dict[str, SearchResponse]
    took_ms: float


class ExplainRequest(QueryBody):
    doc_id: str = Field(min_length=1, max_length=1024)


class ExplainResponse(BaseModel):
    doc_id: str
    score: float = Field(description="the float dot product of the query's and the document's sparse vectors")
    terms: list[TermContribution]


class SparseVector(Strict):
    indices: list[int] = Field(max_length=65_536)
    values: list[float] = Field(max_length=65_536)


class EncodeRequest(Strict):
    index: str = Field(description="encode with this index's models")
    texts: list[str] = Field(min_length=1)
    kind: Literal["query", "document"] = "query"
    outputs: list[Literal["sparse", "dense"]] = Field(default_factory=lambda: ["sparse"], min_length=1, max_length=2)


class Encoded(BaseModel):
    sparse: SparseVector | None = None
    dense: list[float] | None = None


class EncodeResponse(BaseModel):
    items: list[Encoded]
    vocab_hash: str = Field(description="the sparse model's vocabulary; send it back with these vectors")
    took_ms: float


class DocumentIn(Strict):
    id: str = Field(min_length=1, max_length=1024)
    text: str | None = Field(None, max_length=1_000_000)
    metadata: dict | None = None
    sparse: SparseVector | None = None
    dense: list[float] | None = Field(None, max_length=8192)


class UpsertRequest(Strict):
    documents: list[DocumentIn] = Field(min_length=1)
    vocab_hash: str | None = Field(
        None,
        max_length=128,
        description="the vocabulary hash /v1/encode returned with the vectors; refused if not the index's",
    )


class UpsertResponse(BaseModel):
    upserted: int
    took_ms: float


class DeleteRequest(Strict):
    ids: list[str] = Field(min_length=1)


class DeleteResponse(BaseModel):
    deleted: int
    missing: list[str]


class Document(BaseModel):
    id: str
    text: str | None
    metadata: dict | None


class StaticPruning(Strict):
    """Static pruning (approximate): every document's sparse vector keeps only its heaviest terms in the index."""

    max_terms: int | None = Field(None, ge=1, le=65_536, description="at most this many of a document's terms")
    mass: float | None = Field(None, gt=0, le=1, description="the fewest heaviest terms holding this weight share")


class CreateIndexRequest(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    sparse_model: str = "splade-tiny"
    dense_model: str | None = "minilm-l6"
    static_pruning: StaticPruning | None = None
    max_weight: float | None = Field(
        None, gt=0, allow_inf_nan=False,
        description="fixes the top of every segment's impact scale, so that scores do not depend on which segment "
        "holds a document; a document weight above it is refused (default: each segment quantises on its own)",
    )  # fmt: skip
    shards: int = Field(
        1, ge=1, le=64,
        description="live indexes the documents are split into by a hash of their id, searched as one (needs "
        "max_weight, so that every shard scores a document as one index would)",
    )  # fmt: skip


class IndexInfo(BaseModel):
    name: str
    num_docs: int
    segments: int
    sparse_model: str
    vocab_size: int
    vocab_hash: str
    dense_model: str | None
    dense_dim: int | None
    static_pruning: StaticPruning | None = None
    max_weight: float | None = None
    shards: int = 1
    postings: int
    bytes: int


class IndexList(BaseModel):
    indexes: list[IndexInfo]


class Info(BaseModel):
    name: str
    version: str
    indexes: list[str]
    models: list[str]
    limits: dict[str, int]
    auth_required: bool


class Snapshot(BaseModel):
    id: str
    index: str
    created: str = Field(description="UTC, ISO 8601")
    num_docs: int
    files: int
    bytes: int


class SnapshotList(BaseModel):
    snapshots: list[Snapshot]


class RestoreRequest(Strict):
    index: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="the new index's name")
