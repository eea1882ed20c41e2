"""Structured logging: one JSON object per line (or key=value text), each carrying the id of
the request it was logged under."""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# attributes every LogRecord has; anything else on a record came from ``extra=``
# (and uvicorn's ANSI-coloured copy of its message)
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request_id",
    "color_message",
}


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:  # an explicit extra= wins
            record.request_id = request_id.get()
        return True


def _fields(record: logging.LogRecord) -> dict:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if getattr(record, "request_id", None):
            out["request_id"] = record.request_id
        out.update(_fields(record))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def _logfmt(value: object) -> str:
    """A value as logfmt writes it: bare when it is one plain word, else a JSON string (spaces, '=', quotes and
    control characters escaped), so that no value can forge another field or line."""
    text = str(value)
    if text and all(c.isprintable() and c not in ' ="\\' for c in text):
        return text
    return json.dumps(text, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER msg=... key=value ...`` in logfmt quoting: one line per record, whatever the values."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s")

    def format(self, record: logging.LogRecord) -> str:
        head = super().format(record).split("\n", 1)[0]  # Formatter appends the traceback: logged as exc= below
        fields = {"msg": record.getMessage(), "request_id": getattr(record, "request_id", None), **_fields(record)}
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return " ".join([head, *(f"{k}={_logfmt(v)}" for k, v in fields.items() if v is not None)])


def configure(fmt: str = "json", level: str = "INFO") -> None:
    """Log to stderr through one handler on the root logger, in ``fmt`` (json or text)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
