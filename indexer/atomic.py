"""Crash-safe file and directory writes: temporary name, fsync, rename."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes(path: Path, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` atomically."""
    write_file(path, lambda tmp: tmp.write_bytes(data))


def write_file(path: Path, write: Callable[[Path], object]) -> None:
    """Atomically create ``path`` with ``write(tmp)``, which writes a temporary file
    (for writers that take a path, e.g. faiss.write_index)."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    fsync_dir(path.parent)


def staging_dir(final: Path) -> Path:
    """A fresh hidden directory beside ``final`` to build into."""
    tmp = final.with_name(f".{final.name}.building-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=False)
    return tmp


def remove_stale_staging(final: Path) -> None:
    """Delete staging directories beside ``final`` left by processes that died."""
    prefix = f".{final.name}.building-"
    for p in final.parent.glob(prefix + "*"):
        try:
            pid = int(p.name[len(prefix) :].split("-")[0])
        except ValueError:
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True)
        except PermissionError:
            pass


def publish_dir(staged: Path, final: Path, *, overwrite: bool) -> None:
    """Move a completely written ``staged`` directory to ``final``.

    The rename is atomic when ``final`` does not exist. When replacing, the old
    directory is first renamed aside, so a crash in between leaves either the
    old or the new index under a hidden name, never a half-written one at ``final``.
    """
    for child in staged.iterdir():
        if child.is_file():
            with open(child, "rb") as f:
                os.fsync(f.fileno())
    fsync_dir(staged)
    old = None
    if final.exists():
        if not overwrite:
            raise FileExistsError(f"{final} exists; pass overwrite=True to replace it")
        old = final.with_name(f".{final.name}.replaced-{uuid.uuid4().hex[:8]}")
        os.rename(final, old)
    os.rename(staged, final)
    fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged(final: Path, *, overwrite: bool) -> Iterator[Path]:
    """Build a directory in a fresh staging folder beside ``final``, then publish it whole.

        with staged(folder, overwrite=True) as tmp:
            (tmp / "a.bin").write_bytes(...)

    On a normal exit every file is fsynced and the folder renamed to ``final`` (``publish_dir``); on an exception,
    or if publishing fails, the staging folder is removed: ``final`` is either untouched or complete.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = staging_dir(final)
    try:
        yield tmp
        publish_dir(tmp, final, overwrite=overwrite)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
