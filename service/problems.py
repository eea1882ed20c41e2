"""Errors as RFC 9457 problem details (``application/problem+json``)."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from retrieval.encoders import EncoderUnavailableError
from retrieval.live.catalog import DamagedCatalogError

logger = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"


class ProblemDetails(BaseModel):
    """RFC 9457 problem details; validation errors add ``errors``."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str
    request_id: str | None = None
    errors: list[dict] | None = None


_PROBLEM = {"content": {MEDIA_TYPE: {"schema": ProblemDetails.model_json_schema()}}}
# every route may answer any 4xx/5xx, always as problem+json (declaring the ranges also keeps
# FastAPI from documenting its own application/json 422 body, which this service never sends)
RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"description": "a problem with the request (RFC 9457 problem details)", **_PROBLEM},
    "5XX": {"description": "not ready (503) or an unexpected error (RFC 9457 problem details)", **_PROBLEM},
}


class Problem(Exception):  # noqa: N818 - RFC 9457 calls it a problem
    def __init__(
        self, status: int, detail: str, *, title: str | None = None, headers: dict | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.headers = headers or {}
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail
        self.extra = extra


def problem_response(
    request: Request, status: int, title: str, detail: str, headers: dict | None = None, **extra: Any
) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    rid = getattr(request.state, "request_id", None)
    if rid:
        body["request_id"] = rid
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(request, exc.status, exc.title, exc.detail, exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        return problem_response(request, 422, "Unprocessable Content", "the request is not valid", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        phrase = HTTPStatus(exc.status_code).phrase
        response = problem_response(request, exc.status_code, phrase, str(exc.detail), exc.headers)
        if exc.status_code == 405:  # Starlette names only the first route's methods
            response.headers["Allow"] = ", ".join(_allowed(request))
        return response

    @app.exception_handler(DamagedCatalogError)
    async def _damaged(request: Request, exc: DamagedCatalogError) -> JSONResponse:
        logger.error("%s: %s", request.url.path, exc)
        return problem_response(request, 503, "Service Unavailable", str(exc))

    @app.exception_handler(EncoderUnavailableError)
    async def _no_encoders(request: Request, exc: EncoderUnavailableError) -> JSONResponse:
        # this install cannot encode text (no torch extra): a lasting property of the deployment, not an outage
        return problem_response(request, 501, "Not Implemented", str(exc))


def _allowed(request: Request) -> list[str]:
    """Every method some route serves at this path (RFC 9110 wants them all in Allow)."""
    methods = set()
    for route in request.app.router.routes:
        if getattr(route, "methods", None) and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods
    return sorted(methods)
