"""Search, batch search (JSON or a TREC run) and explain."""

from __future__ import annotations

import json
import time

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from retrieval.fusion import Fusion
from retrieval.query import Pruning, Query, QueryError
from retrieval.trec import format_ranked

from ..deps import EngineDep, IndexDep, MetricsDep, Read, SettingsDep
from ..problems import Problem
from ..schemas import (
    BatchSearchRequest,
    BatchSearchResponse,
    ExplainRequest,
    ExplainResponse,
    Hit,
    SearchRequest,
    SearchResponse,
    TermContribution,
    Usage,
)

BUDGET_CHUNK = 64  # queries searched between two checks of the request budget

router = APIRouter(prefix="/v1/indexes/{index}", tags=["search"], dependencies=[Read])


def _query(body: SearchRequest | ExplainRequest) -> Query:
    return Query(
        text=body.query,
        terms=body.terms,
        indices=body.indices,
        values=body.values,
        dense=body.dense,
        vocab_hash=body.vocab_hash,
        filter=getattr(body, "filter", None),
        prune=None if getattr(body, "prune", None) is None else Pruning(body.prune.max_terms, body.prune.mass),
        algorithm=getattr(body, "algorithm", None),
    )


def _check_page(body: SearchRequest, settings) -> None:  # noqa: ANN001
    if body.top_k > settings.max_top_k:
        raise Problem(422, f"top_k is at most {settings.max_top_k}")
    if body.offset > settings.max_offset:
        raise Problem(422, f"offset is at most {settings.max_offset}")


def _fusion(body: SearchRequest) -> Fusion | None:
    return None if body.fusion is None else Fusion(**body.fusion.model_dump())


def _search(engine, index, body: SearchRequest, settings, metrics) -> SearchResponse:  # noqa: ANN001
    _check_page(body, settings)
    t0 = time.perf_counter()
    try:
        res = engine.search(index.path.name, _query(body), body.mode, body.offset + body.top_k, _fusion(body))
    except (QueryError, ValueError) as e:  # ValueError: refused by the index (e.g. too many distinct terms)
        raise Problem(422, str(e)) from None
    return _respond(engine, index.path.name, body, res, t0, metrics)


def _respond(engine, name: str, body: SearchRequest, res, t0: float, metrics) -> SearchResponse:  # noqa: ANN001
    """One query's page of hits, with the stored fields and explanations it asked for."""
    page = res.hits[body.offset : body.offset + body.top_k]
    stored = engine.get(name).get([d for d, _ in page]) if {"text", "metadata"} & set(body.include) else {}
    explained = {}
    if "explanation" in body.include and res.sparse_query is not None:
        given = Query(indices=res.sparse_query[0], values=res.sparse_query[1])  # not encoded again
        explained = engine.explain(name, given, [d for d, _ in page])
    hits = []
    for doc_id, score in page:
        hit = Hit(id=doc_id, score=score)
        if doc_id in stored:
            if "text" in body.include:
                hit.text = stored[doc_id].text
            if "metadata" in body.include:
                hit.metadata = stored[doc_id].metadata
        if doc_id in explained:
            hit.explanation = [TermContribution(term_id=c.term, **_fields(c)) for c in explained[doc_id][0]]
        hits.append(hit)
    metrics.encode.labels(name).observe(res.encode_ms)
    metrics.search.labels(name, body.mode).observe(res.search_ms)
    metrics.postings.labels(name).inc(res.postings)
    usage = Usage(
        query_nnz=res.query_nnz, postings_scored=res.postings, encode_ms=res.encode_ms, search_ms=res.search_ms
    )
    return SearchResponse(hits=hits, took_ms=(time.perf_counter() - t0) * 1000, usage=usage)


def _fields(c) -> dict:  # noqa: ANN001
    return {"token": c.token, "query_weight": c.query_weight, "doc_weight": c.doc_weight, "product": c.product}


@router.post("/search", response_model=SearchResponse)
def search(body: SearchRequest, engine: EngineDep, index: IndexDep, settings: SettingsDep, metrics: MetricsDep):  # noqa: ANN201
    """Top hits of one query (sparse, dense or hybrid), paged by ``offset``."""
    return _search(engine, index, body, settings, metrics)


@router.post(
    "/search/batch",
    response_model=BatchSearchResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "JSON, or a TREC run"}},
)
def search_batch(  # noqa: ANN201
    body: BatchSearchRequest, engine: EngineDep, index: IndexDep, settings: SettingsDep, metrics: MetricsDep
):
    """Many queries; ``format: trec`` returns a TREC run (``qid Q0 doc rank score tag``) as text/plain."""
    if len(body.queries) > settings.max_batch:
        raise Problem(422, f"at most {settings.max_batch} queries per batch")
    ids = [q.id for q in body.queries]
    if len(set(ids)) != len(ids):
        raise Problem(422, "query ids must be unique")
    for q in body.queries:
        _check_page(q, settings)
    if (hits := sum(q.offset + q.top_k for q in body.queries)) > settings.max_batch_hits:
        raise Problem(422, f"the batch asks for {hits} hits (offset + top_k summed); at most {settings.max_batch_hits}")
    if (chars := sum(len(q.query or "") for q in body.queries)) > settings.max_request_chars:
        raise Problem(422, f"{chars} characters of queries to encode; at most {settings.max_request_chars} a request")
    t0 = time.perf_counter()
    name = index.path.name
    groups: dict[tuple, list[int]] = {}  # one batch search per (mode, fusion, filter, pruning, algorithm)
    for i, q in enumerate(body.queries):
        prune = None if q.prune is None else (q.prune.max_terms, q.prune.mass)
        key = (q.mode, _fusion(q), json.dumps(q.filter, sort_keys=True), prune, q.algorithm)
        groups.setdefault(key, []).append(i)
    results: list[SearchResponse | None] = [None] * len(body.queries)
    chunks = [(key, members[lo : lo + BUDGET_CHUNK]) for key, members in groups.items()
              for lo in range(0, len(members), BUDGET_CHUNK)]  # fmt: skip
    for n, ((mode, fusion, *_), members) in enumerate(chunks):
        if n and time.perf_counter() - t0 > settings.request_budget_s:  # a bounded request, not a bounded wait only
            done = sum(len(m) for _, m in chunks[:n])
            raise Problem(
                503, f"the batch ran past its time budget of {settings.request_budget_s:g} s (LSR_REQUEST_BUDGET_S) "
                f"after {done} of {len(body.queries)} queries; send smaller batches", headers={"Retry-After": "1"},
            )  # fmt: skip
        depth = max(body.queries[i].offset + body.queries[i].top_k for i in members)
        t1 = time.perf_counter()
        try:
            found = engine.search_batch(
                name, [_query(body.queries[i]) for i in members], mode, depth, fusion, threads=settings.search_threads
            )
        except (QueryError, ValueError) as e:
            raise Problem(422, str(e)) from None
        for i, res in zip(members, found):
            results[i] = _respond(engine, name, body.queries[i], res, t1, metrics)
    if body.format == "trec":
        pages = [
            (q.id, f"lsr-{q.mode}", [(q.offset + rank, h.id, h.score) for rank, h in enumerate(r.hits, 1)])
            for q, r in zip(body.queries, results)
        ]
        return PlainTextResponse(format_ranked(pages))
    return BatchSearchResponse(
        results={q.id: r for q, r in zip(body.queries, results)}, took_ms=(time.perf_counter() - t0) * 1000
    )


@router.post("/explain", response_model=ExplainResponse)
def explain(body: ExplainRequest, engine: EngineDep, index: IndexDep):  # noqa: ANN201
    """Per-token contributions (query weight x document weight) of a query to one document."""
    try:
        explained = engine.explain(index.path.name, _query(body), [body.doc_id])
    except QueryError as e:
        raise Problem(422, str(e)) from None
    if body.doc_id not in explained:
        raise Problem(404, f"no document {body.doc_id!r} in index {index.path.name!r}")
    terms, score = explained[body.doc_id]
    return ExplainResponse(
        doc_id=body.doc_id, score=score, terms=[TermContribution(term_id=c.term, **_fields(c)) for c in terms]
    )
