"""Serving the app on loopback in tests: a free port, a uvicorn thread, waiting for /readyz."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base: str, attempts: int = 400) -> None:
    """Poll ``base``/readyz every 50 ms until it answers 200."""
    for _ in range(attempts):
        try:
            if httpx.get(f"{base}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{base} never became ready")


@contextmanager
def uvicorn_thread(app, port: int, attempts: int = 400) -> Iterator[str]:  # noqa: ANN001
    """``app`` under uvicorn in a thread on 127.0.0.1:``port``, ready; yields its base URL."""
    import uvicorn

    from service.http_protocol import server_config

    server = uvicorn.Server(server_config(app, "127.0.0.1", port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, attempts)
        yield base
    finally:
        server.should_exit = True
        thread.join(10)


def wait_client_ready(client, attempts: int = 600) -> None:  # noqa: ANN001 - a fastapi TestClient
    """Poll an in-process client's /readyz every 50 ms until it answers 200 (the loader thread has finished)."""
    for _ in range(attempts):
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError("the service never became ready")


def start_client(root, encoders=None, **settings):  # noqa: ANN001, ANN003, ANN201
    """The app over a real Engine in ``root`` as an entered TestClient, ready (leave it with ``__exit__``)."""
    from fastapi.testclient import TestClient

    from retrieval.encoders import Encoders
    from retrieval.engine import Engine
    from service.app import create_app
    from service.settings import Settings

    client = TestClient(create_app(Settings(root=root, **settings), Engine(root, encoders or Encoders())))
    client.__enter__()
    wait_client_ready(client)
    return client
