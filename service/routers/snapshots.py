"""Snapshots: take one of an index, list, delete, and restore one into a new index (every
file's SHA-256 verified before the index appears)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Response
from fastapi import Path as PathParam

from retrieval.query import UnknownSnapshotError
from retrieval.snapshot import SnapshotError

from ..deps import Admin, EngineDep, IndexDep
from ..problems import Problem
from ..schemas import IndexInfo, RestoreRequest, Snapshot, SnapshotList
from .indexes import info

router = APIRouter(tags=["snapshots"], dependencies=[Admin])
SnapshotId = PathParam(min_length=1, max_length=128, description="snapshot id")


@router.post("/v1/indexes/{index}/snapshots", response_model=Snapshot, status_code=201)
def take_snapshot(index: IndexDep, engine: EngineDep):  # noqa: ANN201
    """Snapshot the index's committed state (writes wait meanwhile, searches do not)."""
    return Snapshot(**asdict(engine.snapshot(index.path.name)))


@router.get("/v1/snapshots", response_model=SnapshotList)
def list_snapshots(engine: EngineDep):  # noqa: ANN201
    return SnapshotList(snapshots=[Snapshot(**asdict(s)) for s in engine.snapshots()])


@router.delete("/v1/snapshots/{snapshot}", status_code=204)
def delete_snapshot(engine: EngineDep, snapshot: str = SnapshotId) -> Response:
    try:
        engine.drop_snapshot(snapshot)
    except UnknownSnapshotError:
        raise Problem(404, f"no snapshot {snapshot!r}") from None
    return Response(status_code=204)


@router.post("/v1/snapshots/{snapshot}/restore", response_model=IndexInfo, status_code=201)
def restore_snapshot(body: RestoreRequest, engine: EngineDep, snapshot: str = SnapshotId):  # noqa: ANN201
    """A new index from the snapshot; 422 (and no index) if any file fails its checksum."""
    try:
        return info(engine.restore(snapshot, body.index))
    except UnknownSnapshotError:
        raise Problem(404, f"no snapshot {snapshot!r}") from None
    except FileExistsError:
        raise Problem(409, f"index {body.index!r} exists; delete it first or restore under another name") from None
    except SnapshotError as e:
        raise Problem(422, f"snapshot {snapshot!r} failed verification: {e}") from None
