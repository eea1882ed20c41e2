"""Documents: bulk upsert (encoded here or given as vectors), get, delete."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response

from retrieval.query import NewDocument, QueryError

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
    records = [
        NewDocument(
            d.id, d.text, d.metadata, None if d.sparse is None else d.sparse.indices,
            None if d.sparse is None else d.sparse.values, d.dense,
        )
        for d in docs
    ]  # fmt: skip
    t0 = time.perf_counter()
    try:
        n = engine.upsert_documents(index.path.name, records, body.vocab_hash)
    except (QueryError, ValueError) as e:
        raise Problem(422, str(e)) from None
    return UpsertResponse(upserted=n, took_ms=(time.perf_counter() - t0) * 1000)


@router.post("/delete", response_model=DeleteResponse, dependencies=[Admin])
def delete_many(body: DeleteRequest, engine: EngineDep, index: IndexDep, settings: SettingsDep):  # noqa: ANN201
    """Delete documents by id; ids that were not there are listed in ``missing``."""
    if len(body.ids) > settings.max_batch:
        raise Problem(422, f"at most {settings.max_batch} ids per call")
    ids = list(dict.fromkeys(body.ids))
    try:
        missing = engine.delete(index.path.name, ids)
    except QueryError as e:
        raise Problem(422, str(e)) from None
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
