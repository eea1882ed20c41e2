"""The one vector-file format: a safetensors file of float sparse rows (``indptr`` u64, ``indices`` u32, ``values``
f32), optional dense rows (``dense`` f32), optional document ids (``id_offsets`` i64 + ``id_bytes`` u8) and optional
per-row metadata as JSON text (``meta_offsets`` + ``meta_bytes``). Collection
shards (``retrieval.collection``) and live segments (``retrieval.live``) are both written and read here; reading
memory-maps the file (read-only views, no copy).

Every tensor's SHA-256 is written in the file's ``__metadata__`` (``sha256.<name>``) and checked when the file is
read (``read_vectors``, ``verify_vectors``): a flipped byte in a vector or an id is an error naming the file, not
a silently changed score. Files written before the checksums existed are read unchecked."""

from __future__ import annotations

import hashlib
import json
import mmap
import os
from pathlib import Path

import numpy as np

from indexer import SparseBatch
from indexer.atomic import write_bytes


def write_vectors(
    path: Path,
    sparse: SparseBatch,
    dense: np.ndarray | None = None,
    ids: list[str] | None = None,
    metadata: list[dict | None] | None = None,
) -> None:
    """Write one vector file atomically; ``metadata`` (one JSON object or None per row) is stored as JSON text."""
    from safetensors.numpy import save

    tensors = {
        "indptr": np.asarray(sparse.indptr, dtype=np.uint64),
        "indices": np.asarray(sparse.indices, dtype=np.uint32),
        "values": np.asarray(sparse.values, dtype=np.float32),
    }
    if ids is not None:
        raw = [i.encode() for i in ids]
        tensors["id_offsets"] = np.concatenate([[0], np.cumsum([len(r) for r in raw])]).astype(np.int64)
        tensors["id_bytes"] = np.frombuffer(b"".join(raw), dtype=np.uint8).copy()
    if metadata is not None:
        raw = [b"" if m is None else json.dumps(m, sort_keys=True).encode() for m in metadata]
        tensors["meta_offsets"] = np.concatenate([[0], np.cumsum([len(r) for r in raw])]).astype(np.int64)
        tensors["meta_bytes"] = np.frombuffer(b"".join(raw), dtype=np.uint8).copy()
    if dense is not None:
        tensors["dense"] = np.ascontiguousarray(dense, dtype=np.float32)
    sums = {f"sha256.{name}": hashlib.sha256(np.ascontiguousarray(a).data).hexdigest() for name, a in tensors.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, save(tensors, metadata=sums))


class DamagedVectorsError(ValueError):
    """A vector file whose bytes no longer match the checksums written with it."""


def verify_vectors(path: Path) -> None:
    """Check every tensor of a vector file against the SHA-256 written with it (a file without checksums, from
    before they existed, passes); raises DamagedVectorsError naming the file and the tensor."""
    _check(path, *_map(path))


def _check(path: Path, tensors: dict[str, np.ndarray], sums: dict[str, str], names: tuple[str, ...] = ()) -> None:
    """``tensors`` (the ``names`` among them, or all) against the checksums in the file's ``__metadata__``."""
    for key, want in sums.items():
        name = key.removeprefix("sha256.")
        if name == key or (names and name not in names):
            continue
        if name not in tensors:
            raise DamagedVectorsError(f"{path}: tensor {name!r} is missing; the file is damaged")
        if hashlib.sha256(np.ascontiguousarray(tensors[name]).data).hexdigest() != want:
            raise DamagedVectorsError(
                f"{path}: tensor {name!r} does not match its checksum; the file is damaged (restore a snapshot)"
            )


def read_vectors(path: Path, *, dense: bool = True) -> tuple[list[str] | None, SparseBatch, np.ndarray | None]:
    """A vector file's ids (None when it stores none), sparse rows and (if stored and ``dense``) dense rows;
    raises ValueError for a malformed or inconsistent file, DamagedVectorsError for one whose bytes changed
    since it was written."""
    t, sums = _map(path)  # one map and one header parse for both the arrays and their checksums
    _check(path, t, sums)
    try:
        sparse = SparseBatch(t["indptr"], t["indices"], t["values"])
    except KeyError as e:
        raise ValueError(f"{path}: no {e} tensor") from None
    ids = None
    if "id_offsets" in t:
        off, raw = t["id_offsets"], t["id_bytes"].tobytes()
        try:
            ids = [raw[off[i] : off[i + 1]].decode() for i in range(len(off) - 1)]
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: ids are not UTF-8 ({e})") from None
    rows = t.get("dense") if dense else None
    n = sparse.num_rows
    if (ids is not None and len(ids) != n) or (rows is not None and len(rows) != n):
        raise ValueError(f"{path}: the arrays disagree on their row count")
    return ids, sparse, rows


_DTYPES = {"U8": np.uint8, "U32": np.uint32, "U64": np.uint64, "I64": np.int64, "F32": np.float32}


def read_metadata(path: Path) -> list[dict | None] | None:
    """A vector file's per-row metadata (None when it stores none), checked against its checksums."""
    t, sums = _map(path)
    _check(path, t, sums, ("meta_offsets", "meta_bytes"))
    if "meta_offsets" not in t:
        return None
    off, raw = t["meta_offsets"], t["meta_bytes"].tobytes()
    try:
        return [json.loads(raw[off[i] : off[i + 1]]) if off[i + 1] > off[i] else None for i in range(len(off) - 1)]
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: unreadable metadata ({e})") from None


def map_tensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file as read-only numpy views of one memory map
    (safetensors' own numpy loader copies); raises ValueError for a malformed file."""
    return _map(path)[0]


def _map(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``map_tensors`` and the header's ``__metadata__``."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 8:
            raise ValueError(f"{path}: {size} bytes, not a safetensors file")
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    n = int.from_bytes(mm[:8], "little")
    try:
        if 8 + n > size:
            raise ValueError("header runs past the end")
        header = json.loads(mm[8 : 8 + n])
        meta = header.pop("__metadata__", None) or {}
        if not isinstance(meta, dict):
            raise ValueError("its __metadata__ is not an object")
        out = {}
        for name, t in header.items():
            dtype = np.dtype(_DTYPES[t["dtype"]])
            lo, hi = t["data_offsets"]
            count = int(np.prod(t["shape"], dtype=np.int64))
            if not 0 <= lo <= hi <= size - 8 - n or hi - lo != count * dtype.itemsize:
                raise ValueError(f"tensor {name!r} has offsets {lo}..{hi} for {count} {t['dtype']}")
            out[name] = np.frombuffer(mm, dtype=dtype, count=count, offset=8 + n + lo).reshape(t["shape"])
    except (KeyError, TypeError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: malformed safetensors header ({type(e).__name__}: {e})") from None
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return out, meta
