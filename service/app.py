"""The app factory: settings, lifespan (models and indexes loaded once, in the background,
with /readyz answering 503 until they are), routers, problem+json errors, request ids,
request size limit and metrics."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from retrieval.encoders import Encoders
from retrieval.engine import Engine

from . import logs, problems
from .metrics import Metrics
from .routers import documents, encode, indexes, ops, search, snapshots
from .settings import Settings

logger = logging.getLogger(__name__)


class BodyLimit:
    """Reads every request body itself, so that the answers about bodies are its own: 413 past ``limit`` bytes (by
    Content-Length, or while reading a chunked body), 408 when the client stops sending for ``timeout`` seconds.
    Raised inside the app's own body read, either would reach the client as a 400 "error parsing the body"; and
    a declared but unsent body would hold its connection forever. The body is then replayed to the app."""

    def __init__(self, app: ASGIApp, limit: int, timeout: float = 30.0) -> None:
        self.app = app
        self.limit = limit
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._refuse(scope, receive, send, 413, f"request bodies are at most {self.limit} bytes")
            return
        if length in (None, b"0") and b"chunked" not in headers.get(b"transfer-encoding", b""):
            await self.app(scope, receive, send)  # no body to read
            return
        chunks, seen, more = [], 0, True
        while more:
            try:
                msg = await asyncio.wait_for(receive(), self.timeout)
            except TimeoutError:
                await self._refuse(scope, receive, send, 408, f"the body did not arrive within {self.timeout:g} s")
                return
            if msg["type"] != "http.request":  # the client went away
                return
            chunks.append(msg.get("body", b""))
            seen += len(chunks[-1])
            more = msg.get("more_body", False)
            if seen > self.limit:
                await self._refuse(scope, receive, send, 413, f"request bodies are at most {self.limit} bytes")
                return
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
        title = "Content Too Large" if status == 413 else "Request Timeout"
        headers = {"Connection": "close"} if status == 408 else None
        await problems.problem_response(Request(scope, receive), status, title, detail, headers)(scope, receive, send)


class Admission:
    """At most ``limit`` POST requests under /v1 (the ones that search, encode or write) run at once; the next
    wait for a slot at most ``timeout`` seconds, then get a 503 problem with Retry-After: a burst is shed with
    a clear answer instead of queueing without bound."""

    def __init__(self, app: ASGIApp, limit: int, timeout: float) -> None:
        self.app = app
        self.timeout = timeout
        self.slots = asyncio.Semaphore(limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        try:
            await asyncio.wait_for(self.slots.acquire(), self.timeout)
        except TimeoutError:
            response = problems.problem_response(
                Request(scope, receive), 503, "Service Unavailable",
                f"busy: no slot freed within {self.timeout:g} s (LSR_MAX_INFLIGHT); retry later", {"Retry-After": "1"},
            )  # fmt: skip
            await response(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.slots.release()


REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


class RequestContext:
    """Request ids (``x-request-id`` in and out, and on every log record under the request),
    the latency histogram and the access log line: plain ASGI, because Starlette's
    BaseHTTPMiddleware costs about a millisecond a request here."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"")
        # a client's id is kept only when it cannot forge log fields: 1-128 of [A-Za-z0-9._:-]
        rid = given.decode("ascii") if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        status = 500
        t0 = time.perf_counter()

        started = False

        async def send_with_id(msg: Message) -> None:
            nonlocal status, started
            if msg["type"] == "http.response.start":
                status, started = msg["status"], True
                msg["headers"] = [*msg.get("headers", []), (b"x-request-id", rid.encode("latin-1"))]
            await send(msg)

        token = logs.request_id.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:  # a bug: answered here, so the 500 is problem+json and carries the request id too
            logger.exception("unhandled error on %s", scope["path"])
            if started:
                raise
            response = problems.problem_response(
                Request(scope, receive), 500, "Internal Server Error", "an unexpected error; see the service log"
            )
            await response(scope, receive, send_with_id)
        finally:
            logs.request_id.reset(token)
            elapsed = time.perf_counter() - t0
            path = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(scope["method"], path, str(status)).observe(elapsed)
            logger.info(
                "%s %s %d",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "request_id": rid,
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "ms": round(elapsed * 1000, 3),
                },
            )


def _engine(settings: Settings) -> Engine:
    """The engine the settings describe: every index in this process, or sharded indexes' shards on Ray actors."""
    if settings.ray_address is None:
        return Engine(settings.root, Encoders(settings.device))
    from retrieval.live.ray_shards import opener

    remote = None
    if settings.ray_query_replicas:
        from retrieval.encoder_serving import remote_queries

        remote = remote_queries(settings.ray_query_replicas, settings.ray_query_device, settings.ray_query_cpus,
                                settings.ray_query_gpus)  # fmt: skip
    return Engine(
        settings.root,
        Encoders(settings.device, remote),
        open_index=opener(settings.ray_cpus_per_shard, readers=settings.ray_readers_per_shard),
    )


def _connect_ray(address: str) -> bool:
    """Join (or, for 'local', start) the Ray cluster unless this process already has; whether it started one."""
    import ray

    if ray.is_initialized():
        return False
    ray.init(address=None if address == "local" else address, include_dashboard=False, log_to_driver=False)
    return True


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    settings = settings or Settings()
    from indexer.index import ALGORITHM_ENV

    os.environ[ALGORITHM_ENV] = settings.search_algorithm  # every index of this process (the env var of its setting)
    engine = engine or _engine(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        def load() -> None:
            try:
                t0 = time.perf_counter()
                if settings.ray_address is not None:
                    app.state.own_ray = _connect_ray(settings.ray_address)
                engine.open_all()
                engine.start_merging()
                app.state.ready.set()
                logger.info("ready in %.1f s: indexes %s", time.perf_counter() - t0, engine.names())
            except Exception as e:  # noqa: BLE001 - reported by /readyz
                logger.exception("loading failed")
                app.state.load_error = f"{type(e).__name__}: {e}"

        loader = threading.Thread(target=load, name="lsr-loader", daemon=True)
        loader.start()
        yield
        loader.join()
        engine.close()
        if app.state.own_ray:
            import ray

            ray.shutdown()

    app = FastAPIOffline(  # /docs and /redoc from assets in the package: no CDN, so they work offline
        title="lsr-search",
        summary="Learned sparse (SPLADE) + dense hybrid search over our own inverted index",
        version="1",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.metrics = Metrics()
    app.state.ready = threading.Event()
    app.state.load_error = None
    app.state.own_ray = False
    problems.install(app)
    for router in (ops.router, indexes.router, search.router, documents.router, encode.router, snapshots.router):
        app.include_router(router, responses=problems.RESPONSES)

    app.add_middleware(Admission, limit=settings.max_inflight, timeout=settings.queue_timeout_s)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, timeout=settings.body_timeout_s)
    app.add_middleware(RequestContext, metrics=app.state.metrics)  # outermost: sees every answer
    return app
