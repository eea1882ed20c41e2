"""uvicorn's HTTP/1.1 protocol (h11) with one change: a request it cannot parse (a ``Content-Length`` of ``abc`` or
``-1``, two different lengths, a header line without a colon, a bad chunk size...) is answered like every other
error of this service, as ``application/problem+json`` with a request id in the header and body, instead of
uvicorn's plain-text 400. The connection is closed after it, as before: its framing cannot be trusted.

``server_config`` is the one place a uvicorn server for this app is configured (``python -m service`` and the
tests' loopback servers)."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger(__name__)

DETAIL = (
    "the request is not valid HTTP/1.1 (its request line, a header, Content-Length or chunked framing): "
    "the connection is closed"
)


def malformed_request_body(request_id: str) -> bytes:
    body = {"type": "about:blank", "title": "Bad Request", "status": 400, "detail": DETAIL, "request_id": request_id}
    return json.dumps(body).encode()


class ProblemH11Protocol(H11Protocol):
    """H11Protocol whose answer to an unparsable request is problem+json."""

    def send_400_response(self, msg: str) -> None:  # uvicorn's hook for h11.RemoteProtocolError
        rid = uuid.uuid4().hex
        body = malformed_request_body(rid)
        logger.warning("malformed HTTP request from %s answered 400", self.client, extra={"request_id": rid})
        headers = [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", rid.encode()),
            (b"connection", b"close"),
        ]
        try:
            self.transport.write(self.conn.send(h11.Response(status_code=400, headers=headers, reason=b"Bad Request")))
            self.transport.write(self.conn.send(h11.Data(data=body)))
            self.transport.write(self.conn.send(h11.EndOfMessage()))
        except h11.LocalProtocolError:  # a response was already under way: nothing more can be said on it
            pass
        self.transport.close()


def server_config(app: Any, host: str, port: int, **kwargs: Any):  # noqa: ANN201 - uvicorn.Config, imported lazily
    """The uvicorn configuration this service runs under: h11 with problem+json 400s, our logging (uvicorn's
    records go through our handler; the request-context middleware writes the access log)."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, http=ProblemH11Protocol, log_config=None, access_log=False,
                          **kwargs)  # fmt: skip
