"""Documents: bulk upsert (encoded here or given as vectors), get, delete."""

from __future__ import annotations

import time

import numpy as np
from fastapi import APIRouter, Response

from indexer import SparseBatch
from retrieval.engine import QueryError, vocabulary_mismatch

from ..deps import Admin, EngineDep, IndexDep, Read, SettingsDep
from ..problems import Problem
from ..schemas import DeleteRequest, DeleteResponse, Document, UpsertRequest, UpsertResponse

router = APIRouter(prefix="/v1/indexes/{index}/documents", tags=["documents"])


@router.post("", response_model=UpsertResponse, dependencies=[Admin])
def upsert(body: UpsertRequest, engine: EngineDep, index: IndexDep, settings: SettingsDep):  # noqa: ANN201
    """Add or replace documents. Either every document carries its vectors (``sparse``, and
    ``dense`` when the index has dense vectors) or none does and the server encodes ``text``.
    The documents are searchable, and durable, when the call returns."""
    docs = body.documents
    if len(docs) > settings.max_batch:
        raise Problem(422, f"at most {settings.max_batch} documents per call")
    ids = [d.id for d in docs]
    if len(set(ids)) != len(ids):
        raise Problem(422, "document ids must be unique within a call")
    with_vectors = [d.sparse is not None for d in docs]
    if any(with_vectors) and not all(with_vectors):
        raise Problem(422, "either every document carries a sparse vector or none does")
    spec = index.spec
    if body.vocab_hash is not None and body.vocab_hash != spec.vocab_hash:
        raise Problem(422, vocabulary_mismatch(index.path.name, spec.vocab_hash, body.vocab_hash))
    sparse = dense = None
    if all(with_vectors):
        rows = []
        for d in docs:
            if len(d.sparse.indices) != len(d.sparse.values):
                raise Problem(422, f"document {d.id!r}: indices and values differ in length")
            rows.append(dict(zip(d.sparse.indices, d.sparse.values)))
            if any(not 0 <= t < spec.vocab_size for t in d.sparse.indices):
                raise Problem(422, f"document {d.id!r}: term ids must be in 0..{spec.vocab_size - 1}")
        sparse = SparseBatch.from_rows(rows)
        given_dense = [d.dense is not None for d in docs]
        if spec.dense_dim is not None and all(given_dense):
            dense = np.array([d.dense for d in docs], dtype=np.float32)
            if dense.shape[1:] != (spec.dense_dim,):
                raise Problem(422, f"dense vectors must have {spec.dense_dim} numbers")
        elif any(given_dense) and spec.dense_dim is None:
            raise Problem(422, f"index {index.path.name!r} has no dense vectors")
    elif any(d.text is None for d in docs):
        raise Problem(422, "documents without vectors need a text")
    t0 = time.perf_counter()
    try:
        n = engine.upsert(
            index.path.name, ids, [d.text for d in docs], [d.metadata for d in docs], sparse=sparse, dense=dense
        )
    except (QueryError, ValueError) as e:
        raise Problem(422, str(e)) from None
    return UpsertResponse(upserted=n, took_ms=(time.perf_counter() - t0) * 1000)


@router.post("/delete", response_model=DeleteResponse, dependencies=[Admin])
def delete_many(body: DeleteRequest, engine: EngineDep, index: IndexDep, settings: SettingsDep):  # noqa: ANN201
    """Delete documents by id; ids that were not there are listed in ``missing``."""
    if len(body.ids) > settings.max_batch:
        raise Problem(422, f"at most {settings.max_batch} ids per call")
    ids = list(dict.fromkeys(body.ids))
    missing = engine.delete(index.path.name, ids)
    return DeleteResponse(deleted=len(ids) - len(missing), missing=missing)


@router.get("/{doc_id:path}", response_model=Document, dependencies=[Read])
def get_document(doc_id: str, index: IndexDep):  # noqa: ANN201
    got = index.get([doc_id])
    if doc_id not in got:
        raise Problem(404, f"no document {doc_id!r} in index {index.path.name!r}")
    d = got[doc_id]
    return Document(id=d.id, text=d.text, metadata=d.metadata)


@router.delete("/{doc_id:path}", status_code=204, dependencies=[Admin])
def delete_document(doc_id: str, engine: EngineDep, index: IndexDep) -> Response:
    if engine.delete(index.path.name, [doc_id]):
        raise Problem(404, f"no document {doc_id!r} in index {index.path.name!r}")
    return Response(status_code=204)
