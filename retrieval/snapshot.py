"""Snapshots of a live index, and restoring them.

A snapshot is a folder holding a consistent copy of the index (:meth:`LiveIndex.copy_to`:
the catalog through SQLite's backup API, the immutable segment files hard-linked) and
``snapshot.json``, which lists every file with its size and SHA-256. Hard links make taking
a snapshot cheap; copy the folder to other storage for a backup that survives the disk.
:func:`restore` copies a snapshot into a new index folder, hashing as it copies, and refuses
(publishing nothing) when a file is missing, extra, truncated or changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from indexer.atomic import staged, write_bytes
from indexer.manifest import sha256_file

from .live import CATALOG, SEGMENTS, AnyLiveIndex, open_live
from .query import UnknownSnapshotError

logger = logging.getLogger(__name__)

MANIFEST = "snapshot.json"
FORMAT = "lsr-live-snapshot/1"
ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}-\d{8}T\d{6}Z-[0-9a-f]{6}$")


class SnapshotError(ValueError):
    """A snapshot that is incomplete or damaged."""


@dataclass(frozen=True)
class SnapshotInfo:
    id: str
    index: str
    created: str  # UTC, ISO 8601
    num_docs: int
    files: int
    bytes: int


def new_id(index: str) -> str:
    return f"{index}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:6]}"


def take(index: AnyLiveIndex, dest: Path) -> SnapshotInfo:
    """Snapshot ``index`` into the new folder ``dest`` (its name is the snapshot id)."""
    with staged(dest, overwrite=False) as work:
        num_docs = index.copy_to(work)
        files = {}
        for path in sorted(p for p in work.rglob("*") if p.is_file()):
            files[path.relative_to(work).as_posix()] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
        info = SnapshotInfo(
            id=dest.name,
            index=index.path.name,
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            num_docs=num_docs,
            files=len(files),
            bytes=sum(f["bytes"] for f in files.values()),
        )
        body = {"format": FORMAT, **asdict(info), "spec": asdict(index.spec), "contents": files}
        write_bytes(work / MANIFEST, json.dumps(body, indent=1).encode())
    return info


def read_info(folder: Path) -> SnapshotInfo:
    """The snapshot's description from its manifest (no checksums verified)."""
    manifest = _manifest(folder)
    return SnapshotInfo(**{k: manifest[k] for k in SnapshotInfo.__dataclass_fields__})


def restore(folder: Path, dest: Path, open_index: Callable[[Path], AnyLiveIndex] = open_live) -> AnyLiveIndex:
    """A new index at ``dest`` from the snapshot ``folder``, every file checked against its
    SHA-256 while it is copied; raises :class:`SnapshotError` and publishes nothing otherwise.
    The published index is opened with ``open_index`` (an engine's: its shards may run elsewhere)."""
    contents = _manifest(folder)["contents"]
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {MANIFEST}
    if extra := sorted(on_disk - set(contents)):
        raise SnapshotError(f"{folder.name}: files the manifest does not list: {extra[:3]}")
    if missing := sorted(set(contents) - on_disk):  # also any path outside the folder
        raise SnapshotError(f"{folder.name}: missing files: {missing[:3]}")
    with staged(dest, overwrite=False) as work:
        for rel, want in contents.items():
            target = work / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            size, digest = _copy_hashing(folder / rel, target)
            if (size, digest) != (want["bytes"], want["sha256"]):
                raise SnapshotError(
                    f"{folder.name}: {rel} has {size} bytes, sha256 {digest[:12]}…; "
                    f"the manifest says {want['bytes']} bytes, sha256 {want['sha256'][:12]}…"
                )
        for catalog in [work / CATALOG, *work.glob(f"shard-*/{CATALOG}")]:  # empty folders are not in the manifest
            (catalog.parent / SEGMENTS).mkdir(exist_ok=True)
        open_live(work).close()  # the catalog(s) and every segment they name open
    return open_index(dest)


@dataclass(frozen=True)
class SnapshotStore:
    """The folder of an engine's snapshots, one subfolder each (named by :func:`new_id`)."""

    root: Path

    def take(self, index: AnyLiveIndex) -> SnapshotInfo:
        self.root.mkdir(exist_ok=True)
        return take(index, self.root / new_id(index.path.name))

    def list(self) -> list[SnapshotInfo]:
        """Every snapshot, oldest first; a folder whose manifest cannot be read is skipped."""
        out = []
        if self.root.is_dir():
            for folder in self.root.iterdir():
                if ID.match(folder.name):
                    try:
                        out.append(read_info(folder))
                    except SnapshotError as e:
                        logger.warning("skipping snapshot %s: %s", folder.name, e)
        return sorted(out, key=lambda s: (s.created, s.id))

    def folder(self, snapshot: str) -> Path:
        folder = self.root / snapshot
        if not ID.match(snapshot) or not folder.is_dir():
            raise UnknownSnapshotError(snapshot)
        return folder

    def drop(self, snapshot: str) -> None:
        folder = self.folder(snapshot)
        trash = self.root / f".{snapshot}.deleted-{time.monotonic_ns()}"
        folder.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)


def _manifest(folder: Path) -> dict:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        raise SnapshotError(f"{folder.name}: no {MANIFEST}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SnapshotError(f"{folder.name}: {MANIFEST} is not JSON: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SnapshotError(f"{folder.name}: not a {FORMAT} manifest")
    return manifest


def _copy_hashing(src: Path, dst: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while chunk := fin.read(1 << 20):
            h.update(chunk)
            fout.write(chunk)
            size += len(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    return size, h.hexdigest()
