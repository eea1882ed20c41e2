"""Operations: liveness, readiness, Prometheus metrics, service info."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..deps import EngineDep, MetricsDep, Read, SettingsDep, check_ready
from ..schemas import Info

router = APIRouter(tags=["operations"])
PAGE = Path(__file__).resolve().parents[1] / "static" / "search.html"


@router.get("/", include_in_schema=False, response_class=HTMLResponse)
async def search_page() -> HTMLResponse:
    """A small search page (plain HTML and JS, no CDN): index and mode pickers, hits with their matching
    tokens marked, and the per-token explanation of a hit on click."""
    return HTMLResponse(PAGE.read_text(encoding="utf-8"))


@router.get("/livez")
async def livez() -> dict:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> dict:
    """Ready once loading finished; indexes that could not be opened (damaged) are listed, the rest serve."""
    check_ready(request)
    failed = request.app.state.engine.failed()
    return {"status": "ready", "failed_indexes": failed} if failed else {"status": "ready"}


@router.get(
    "/metrics",
    dependencies=[Read],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}},
)
def metrics(m: MetricsDep) -> Response:
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/info", response_model=Info, dependencies=[Read])
def service_info(engine: EngineDep, settings: SettingsDep):  # noqa: ANN201
    try:
        v = version("lsr-search")
    except PackageNotFoundError:
        v = "unknown"
    models = sorted(
        {m for n in engine.names() for m in (engine.get(n).spec.sparse_model, engine.get(n).spec.dense_model) if m}
    )
    limits = {
        "max_top_k": settings.max_top_k,
        "max_offset": settings.max_offset,
        "max_body_bytes": settings.max_body_bytes,
        "max_batch": settings.max_batch,
        "max_texts": settings.max_texts,
    }
    return Info(
        name="lsr-search",
        version=v,
        indexes=engine.names(),
        models=models,
        limits=limits,
        auth_required=settings.auth_required,
    )
