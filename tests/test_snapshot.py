"""Snapshots of a live index: a restore gives back exactly the state at snapshot time, and
any damage to a snapshot is refused before an index appears."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from live_model import SPEC, check, docs

from retrieval.live import LiveIndex
from retrieval.snapshot import MANIFEST, SnapshotError, read_info, restore, take


@pytest.fixture()
def snapshot(tmp_path: Path) -> tuple[Path, dict, LiveIndex]:
    index = LiveIndex.create(tmp_path / "idx", SPEC)
    rng = np.random.default_rng(7)
    model: dict = {}
    for ids in (["a", "b", "c"], ["d", "e"], ["b", "f"]):
        batch, dense, new = docs(rng, ids)
        index.upsert(ids, batch, dense, texts=[new[d][2] for d in ids])
        model.update(new)
    index.delete(["c"])
    del model["c"]
    folder = tmp_path / "snaps" / "idx-20261125T000000Z-abcdef"
    folder.parent.mkdir()
    take(index, folder)
    return folder, model, index


def test_restore_gives_the_state_at_snapshot_time(tmp_path: Path, snapshot) -> None:
    folder, model, index = snapshot
    info = read_info(folder)
    assert (info.index, info.num_docs, info.id) == ("idx", len(model), folder.name)
    rng = np.random.default_rng(8)  # later writes and a merge do not reach the snapshot
    batch, dense, _ = docs(rng, ["a", "z"])
    index.upsert(["a", "z"], batch, dense)
    index.delete(["d"])
    index.merge(max_segments=1, count=8)
    restored = restore(folder, tmp_path / "back")
    check(restored, model, np.random.default_rng(1))
    restored.close()
    check(LiveIndex.open(tmp_path / "back"), model, np.random.default_rng(2))
    index.close()


def _flip(path: Path) -> None:
    """Damage the snapshot's copy only: its files are hard links to the live index's."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.unlink()
    path.write_bytes(bytes(data))


def _add_entry(folder: Path, rel: str) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["contents"][rel] = {"bytes": 1, "sha256": "0" * 64}
    (folder / MANIFEST).write_text(json.dumps(manifest))


def _segment_file(folder: Path) -> Path:
    return sorted((folder / "segments").rglob("postings.bin"))[0]


DAMAGE = {
    "flipped byte in a segment": (lambda f: _flip(_segment_file(f)), "sha256"),
    "truncated catalog": (lambda f: os.truncate(f / "catalog.sqlite", 100), "catalog.sqlite has 100 bytes"),
    "missing file": (lambda f: _segment_file(f).unlink(), "missing files"),
    "extra file": (lambda f: (f / "segments" / "stray.bin").write_bytes(b"x"), "does not list"),
    "no manifest": (lambda f: (f / MANIFEST).unlink(), "no snapshot.json"),
    "garbled manifest": (lambda f: (f / MANIFEST).write_text("{"), "not JSON"),
    "foreign manifest": (lambda f: (f / MANIFEST).write_text(json.dumps({"format": "x"})), "not a lsr-live-snapshot"),
    "path outside": (lambda f: _add_entry(f, "../idx/catalog.sqlite"), "missing files"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_snapshot_is_refused_and_leaves_nothing(tmp_path: Path, snapshot, damage: str) -> None:
    folder, _, index = snapshot
    harm, message = DAMAGE[damage]
    harm(folder)
    with pytest.raises(SnapshotError, match=message):
        restore(folder, tmp_path / "back")
    assert not (tmp_path / "back").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".back")] == []
    index.close()
