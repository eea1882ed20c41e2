"""Encode texts with an index's models, for clients that index elsewhere."""

from __future__ import annotations

import time

import numpy as np
from fastapi import APIRouter

from retrieval.query import UnknownIndexError

from ..deps import EngineDep, Read, SettingsDep
from ..problems import Problem
from ..schemas import Encoded, EncodeRequest, EncodeResponse, SparseVector

router = APIRouter(prefix="/v1", tags=["encode"], dependencies=[Read])


@router.post("/encode", response_model=EncodeResponse)
def encode(body: EncodeRequest, engine: EngineDep, settings: SettingsDep):  # noqa: ANN201
    if len(body.texts) > settings.max_texts:
        raise Problem(422, f"at most {settings.max_texts} texts per call")
    if (longest := max(len(t) for t in body.texts)) > settings.max_text_chars:
        raise Problem(422, f"a text has {longest} characters; at most {settings.max_text_chars} (LSR_MAX_TEXT_CHARS)")
    if (total := sum(len(t) for t in body.texts)) > settings.max_request_chars:
        raise Problem(422, f"{total} characters to encode; at most {settings.max_request_chars} a request")
    try:
        sparse_enc, dense_enc = engine.models(body.index)
    except UnknownIndexError:
        raise Problem(404, f"no index named {body.index!r}") from None
    if "dense" in body.outputs and dense_enc is None:
        raise Problem(422, f"index {body.index!r} has no dense model")
    t0 = time.perf_counter()
    items = [Encoded() for _ in body.texts]
    if "sparse" in body.outputs:
        fn = sparse_enc.encode_queries if body.kind == "query" else sparse_enc.encode_documents
        batch = fn(body.texts)
        for i, item in enumerate(items):
            idx, val = batch.row(i)
            item.sparse = SparseVector(indices=idx.tolist(), values=val.tolist())
    if "dense" in body.outputs:
        fn = dense_enc.encode_queries if body.kind == "query" else dense_enc.encode_documents
        emb = np.asarray(fn(body.texts), dtype=np.float32)
        for item, row in zip(items, emb):
            item.dense = row.tolist()
    return EncodeResponse(items=items, vocab_hash=sparse_enc.vocab_hash, took_ms=(time.perf_counter() - t0) * 1000)
