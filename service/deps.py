"""Dependencies: the engine (ready or 503), access checks, the index named in the path.

They are ``async def`` although none awaits anything: FastAPI runs a plain ``def``
dependency in its thread pool, and those hops cost more than the search they guard."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Path, Request

from retrieval.engine import Engine
from retrieval.live import AnyLiveIndex
from retrieval.query import IndexFailedError, UnknownIndexError

from .metrics import Metrics
from .problems import Problem
from .settings import Settings


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def check_ready(request: Request) -> None:
    """503 until the loader has opened the indexes and their models (or when it failed)."""
    state = request.app.state
    if state.load_error is not None:
        raise Problem(503, f"the service failed to load: {state.load_error}")
    if not state.ready.is_set():
        raise Problem(503, "models and indexes are still loading")


async def get_engine(request: Request) -> Engine:
    check_ready(request)
    return request.app.state.engine


def _key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key")


def _matches(key: str | None, keys: list[str]) -> bool:
    return key is not None and any(secrets.compare_digest(key, k) for k in keys)


async def read_access(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> None:
    if not settings.auth_required:
        return
    key = _key(request)
    if not (_matches(key, settings.read_keys) or _matches(key, settings.admin_keys)):
        raise Problem(401, "an API key is required (Authorization: Bearer KEY or X-API-Key)")


async def admin_access(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> None:
    if not settings.auth_required:
        return
    key = _key(request)
    if _matches(key, settings.admin_keys):
        return
    if _matches(key, settings.read_keys):
        raise Problem(403, "this API key may only read")
    raise Problem(401, "an admin API key is required (Authorization: Bearer KEY or X-API-Key)")


async def get_index(
    engine: Annotated[Engine, Depends(get_engine)],
    index: Annotated[str, Path(min_length=1, max_length=64, description="index name")],
) -> AnyLiveIndex:
    try:
        return engine.get(index)
    except UnknownIndexError:
        raise Problem(404, f"no index named {index!r}") from None
    except IndexFailedError as e:
        raise Problem(503, str(e)) from None


EngineDep = Annotated[Engine, Depends(get_engine)]
IndexDep = Annotated[AnyLiveIndex, Depends(get_index)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
Read = Depends(read_access)
Admin = Depends(admin_access)
