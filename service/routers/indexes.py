"""Index management: list, create, stats, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from retrieval.live import AnyLiveIndex, ShardedLiveIndex
from retrieval.query import UnknownIndexError

from ..deps import Admin, EngineDep, IndexDep, Read
from ..problems import Problem
from ..schemas import CreateIndexRequest, IndexInfo, IndexList, StaticPruning

router = APIRouter(prefix="/v1/indexes", tags=["indexes"])


def info(index: AnyLiveIndex) -> IndexInfo:
    stats = index.stats()
    return IndexInfo(
        name=index.path.name,
        num_docs=index.num_docs,
        segments=stats.segments,
        sparse_model=index.spec.sparse_model,
        vocab_size=index.spec.vocab_size,
        vocab_hash=index.spec.vocab_hash,
        dense_model=index.spec.dense_model,
        dense_dim=index.spec.dense_dim,
        static_pruning=None
        if index.spec.doc_max_terms is None and index.spec.doc_mass is None
        else StaticPruning(max_terms=index.spec.doc_max_terms, mass=index.spec.doc_mass),
        max_weight=index.spec.max_weight,
        shards=len(index.shards) if isinstance(index, ShardedLiveIndex) else 1,
        postings=stats.postings,
        bytes=stats.bytes,
    )


@router.get("", response_model=IndexList, dependencies=[Read])
def list_indexes(engine: EngineDep):  # noqa: ANN201
    return IndexList(indexes=[info(engine.get(n)) for n in engine.names()])


@router.post("", response_model=IndexInfo, status_code=201, dependencies=[Admin])
def create_index(body: CreateIndexRequest, engine: EngineDep):  # noqa: ANN201
    try:
        sp = body.static_pruning
        return info(
            engine.create(
                body.name,
                body.sparse_model,
                body.dense_model,
                sp and sp.max_terms,
                sp and sp.mass,
                body.max_weight,
                body.shards,
            )
        )
    except FileExistsError:
        raise Problem(409, f"index {body.name!r} exists") from None
    except (FileNotFoundError, OSError, ValueError) as e:
        raise Problem(422, f"cannot create index {body.name!r}: {e}") from None


@router.get("/{index}", response_model=IndexInfo, dependencies=[Read])
def index_stats(index: IndexDep):  # noqa: ANN201
    return info(index)


@router.delete("/{index}", status_code=204, dependencies=[Admin])
def delete_index(
    index: Annotated[str, Path(min_length=1, max_length=64, description="index name")], engine: EngineDep
) -> Response:
    """Delete an index; a damaged one too (then restore a snapshot under its name)."""
    try:
        engine.drop(index)
    except UnknownIndexError:
        raise Problem(404, f"no index named {index!r}") from None
    return Response(status_code=204)
