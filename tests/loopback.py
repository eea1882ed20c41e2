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

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, attempts)
        yield base
    finally:
        server.should_exit = True
        thread.join(10)
