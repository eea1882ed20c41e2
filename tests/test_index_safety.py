"""Bad input gets a clear error and changes nothing; damaged indexes never open."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from indexer import CorruptIndexError, Index, IndexBuilder, IndexExistsError, SparseBatch
from indexer.manifest import LEXICON, MANIFEST, POSTINGS


def small_docs() -> SparseBatch:
    rng = np.random.default_rng(0)
    rows = [{int(t): float(w) for t, w in zip(rng.integers(0, 50, 8), rng.random(8) + 0.01)} for _ in range(300)]
    return SparseBatch.from_rows(rows)


@pytest.fixture
def index_path(tmp_path: Path) -> Path:
    path = tmp_path / "idx"
    with IndexBuilder(path, vocab_size=50, model_id="test") as b:
        b.add([f"d{i}" for i in range(300)], small_docs())
    return path


def q(indices, values) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(indices, dtype=np.uint32), np.asarray(values, dtype=np.float32)


# ---- input validation --------------------------------------------------------------------------


def test_wrong_dtypes_are_refused(tmp_path: Path) -> None:
    b = IndexBuilder(tmp_path / "x", vocab_size=10)
    with pytest.raises(TypeError, match="indices must be uint32, got int64"):
        b.add(["a"], SparseBatch(np.array([0, 1]), np.array([1]), np.array([1.0], np.float32)))
    with pytest.raises(TypeError, match="values must be float32, got float64"):
        b.add(["a"], SparseBatch(np.array([0, 1]), np.array([1], np.uint32), np.array([1.0])))
    with pytest.raises(TypeError, match="numpy array"):
        b.add(["a"], SparseBatch([0, 1], np.array([1], np.uint32), np.array([1.0], np.float32)))


@pytest.mark.parametrize(
    ("indptr", "indices", "values", "message"),
    [
        ([0, 2], [1, 10], [1.0, 1.0], "row 0 has term id 10 >= vocab_size 10"),
        ([0, 1, 2], [1, 2], [1.0, np.nan], "row 1 has weight nan"),
        ([0, 1, 2], [1, 2], [1.0, -0.5], "row 1 has weight -0.5"),
        ([0, 1, 2], [1, 2], [1.0, np.inf], "weights must be finite"),
        ([1, 2], [1, 2], [1.0, 1.0], r"indptr\[0\] must be 0"),
        ([0, 2, 1], [1, 2], [1.0, 1.0], "non-decreasing"),
        ([0, 1], [1, 2], [1.0, 1.0], r"indptr\[-1\] = 1 but there are 2"),
        ([0, 2], [1, 2], [1.0], "2 indices but 1 values"),
    ],
)
def test_bad_batches_are_refused_and_change_nothing(tmp_path, indptr, indices, values, message) -> None:
    b = IndexBuilder(tmp_path / "x", vocab_size=10)
    b.add(["ok"], SparseBatch.from_rows([{1: 1.0}]))
    batch = SparseBatch(np.asarray(indptr, np.uint64), np.asarray(indices, np.uint32), np.asarray(values, np.float32))
    with pytest.raises(ValueError, match=message):
        b.add([f"d{i}" for i in range(len(indptr) - 1)], batch)
    assert b.num_docs == 1
    b.commit()
    assert Index.open(tmp_path / "x").num_docs == 1


def test_duplicate_and_bad_doc_ids(tmp_path: Path) -> None:
    b = IndexBuilder(tmp_path / "x", vocab_size=10)
    b.add(["a"], SparseBatch.from_rows([{1: 1.0}]))
    with pytest.raises(ValueError, match="duplicate document id 'a'"):
        b.add(["b", "a"], SparseBatch.from_rows([{1: 1.0}, {2: 1.0}]))
    with pytest.raises(ValueError, match="duplicate document id 'c'"):
        b.add(["c", "c"], SparseBatch.from_rows([{1: 1.0}, {2: 1.0}]))
    with pytest.raises(ValueError, match="non-empty strings"):
        b.add([""], SparseBatch.from_rows([{1: 1.0}]))
    with pytest.raises(ValueError, match="2 doc ids for 1 rows"):
        b.add(["x", "y"], SparseBatch.from_rows([{1: 1.0}]))
    assert b.num_docs == 1


def test_query_validation(index_path: Path) -> None:
    index = Index.open(index_path)
    with pytest.raises(ValueError, match="empty query"):
        index.search(*q([], []))
    with pytest.raises(ValueError, match="empty query"):
        index.search(*q([1, 2], [0.0, 0.0]))
    with pytest.raises(ValueError, match=">= vocab_size 50"):
        index.search(*q([50], [1.0]))
    with pytest.raises(TypeError, match="indices must be uint32"):
        index.search(np.array([1]), np.array([1.0], np.float32))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        index.search(*q([1], [1.0]), k=0)
    batch = SparseBatch.from_rows([{1: 1.0}, {}, {2: 0.0}])
    with pytest.raises(ValueError, match=r"row\(s\) 1, 2 have no term with a positive weight"):
        index.search_batch(batch)
    with pytest.raises(ValueError, match="threads"):
        index.search_batch(SparseBatch.from_rows([{1: 1.0}]), threads=0)


def test_k_larger_than_corpus(index_path: Path) -> None:
    index = Index.open(index_path)
    res = index.search_batch(SparseBatch.from_rows([{1: 1.0}]), k=10**9, threads=1)
    assert res.docs.shape == (1, 300)


def test_lexicon_roundtrip(index_path: Path) -> None:
    index = Index.open(index_path)
    assert index.lexicon[5] == "d5" and index.lexicon.number("d299") == 299
    with pytest.raises(KeyError, match="unknown document id 'nope'"):
        index.lexicon.number("nope")
    assert index.manifest.model_id == "test"


# ---- on-disk safety ------------------------------------------------------------------------------


def test_existing_index_is_not_replaced_without_overwrite(index_path: Path) -> None:
    with pytest.raises(IndexExistsError):
        IndexBuilder(index_path, vocab_size=50)
    with IndexBuilder(index_path, vocab_size=50, overwrite=True) as b:
        b.add(["only"], SparseBatch.from_rows([{1: 1.0}]))
    assert Index.open(index_path).num_docs == 1
    assert [p.name for p in index_path.parent.iterdir()] == ["idx"]


def test_exception_inside_build_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), IndexBuilder(tmp_path / "x", vocab_size=10) as b:
        b.add(["a"], SparseBatch.from_rows([{1: 1.0}]))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


CRASHES = {
    # killed after the postings were written, while writing the manifest
    "before-manifest": "builder.write_bytes = lambda path, data: os._exit(3) if path.name == 'manifest.json' "
    "else real_write(path, data)",
    # killed with everything written, right before the final rename
    "before-publish": "import indexer.atomic; indexer.atomic.publish_dir = lambda *a, **k: os._exit(3)",
}


@pytest.mark.parametrize("crash", sorted(CRASHES))
def test_crash_mid_commit_leaves_no_index(tmp_path: Path, crash: str) -> None:
    """A process that dies mid-commit leaves no index at the path; the next build cleans up after it."""
    script = textwrap.dedent(
        f"""
        import os
        import indexer.builder as builder
        from indexer import IndexBuilder, SparseBatch
        real_write = builder.write_bytes
        {CRASHES[crash]}
        b = IndexBuilder({str(tmp_path / "x")!r}, vocab_size=10)
        b.add(["a"], SparseBatch.from_rows([{{1: 1.0}}]))
        b.commit()
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    assert not (tmp_path / "x").exists()
    with pytest.raises(FileNotFoundError):
        Index.open(tmp_path / "x")
    staged = [p for p in tmp_path.iterdir() if p.name.startswith(".x.building-")]
    assert len(staged) == 1
    if crash == "before-manifest":
        with pytest.raises(CorruptIndexError, match="incomplete"):
            Index.open(staged[0])
    with IndexBuilder(tmp_path / "x", vocab_size=10) as b:
        b.add(["a"], SparseBatch.from_rows([{1: 1.0}]))
    assert Index.open(tmp_path / "x").num_docs == 1
    assert [p.name for p in tmp_path.iterdir()] == ["x"]  # the dead process's staging dir is gone


def test_missing_manifest_is_incomplete(index_path: Path) -> None:
    os.unlink(index_path / MANIFEST)
    with pytest.raises(CorruptIndexError, match="incomplete"):
        Index.open(index_path)


@pytest.mark.parametrize("keep", [0, 100, 319, 320, 1000, -1])
def test_truncated_postings(index_path: Path, keep: int) -> None:
    path = index_path / POSTINGS
    data = path.read_bytes()
    path.write_bytes(data[: keep if keep >= 0 else len(data) - 1])
    with pytest.raises(CorruptIndexError):
        Index.open(index_path)


def covered_bytes(data: bytes) -> np.ndarray:
    """Mask of the bytes an index file's checksums cover: the header fields and every section."""
    mask = np.zeros(len(data), dtype=bool)
    mask[: 56 + 9 * 24 + 8] = True  # header fields up to and including header_checksum
    for i in range(9):
        offset, length, _ = struct.unpack_from("<QQQ", data, 56 + 24 * i)
        mask[offset : offset + length] = True
    return mask


def test_every_byte_of_the_postings_file_is_checked(index_path: Path) -> None:
    """Flip each byte in turn: every flip is caught at open, padding and the header's reserved space included
    (the checksums cover the header fields and the sections; every other byte must be zero)."""
    path = index_path / POSTINGS
    original = path.read_bytes()
    covered = covered_bytes(original)
    assert covered.mean() > 0.8
    missed = []
    for off in range(0, len(original), 3):
        data = bytearray(original)
        data[off] ^= 0x5A
        path.write_bytes(bytes(data))
        try:
            Index.open(index_path)
        except CorruptIndexError:
            continue
        missed.append(off)
    path.write_bytes(original)
    Index.open(index_path)
    assert not covered[missed].any(), [m for m in missed if covered[m]][:10]
    assert not missed, missed[:10]  # the padding too


def test_corrupt_lexicon(index_path: Path) -> None:
    path = index_path / LEXICON
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptIndexError, match="sha256 mismatch"):
        Index.open(index_path)


def test_garbage_manifest(index_path: Path) -> None:
    (index_path / MANIFEST).write_text("{not json")
    with pytest.raises(CorruptIndexError, match="unreadable manifest"):
        Index.open(index_path)


def test_not_an_index_file(index_path: Path) -> None:
    path = index_path / POSTINGS
    size = path.stat().st_size
    path.write_bytes(b"\x00" * size)
    with pytest.raises(CorruptIndexError, match="bad magic"):
        Index.open(index_path)


def test_the_native_bindings_refuse_every_conversion() -> None:
    """An int64 array where uint32 is declared used to be narrowed silently (2**32 + 3 stored as term 3)."""
    from indexer import _core

    b = _core.Builder(10)
    u64, u32, f32 = np.array([0, 1], np.uint64), np.array([3], np.uint32), np.array([1.0], np.float32)
    for bad in ((u64, np.array([2**32 + 3], np.int64), f32), (u64.astype(np.int64), u32, f32),
                (u64, u32, f32.astype(np.float64)), (u64.tolist(), u32, f32)):  # fmt: skip
        with pytest.raises(TypeError):
            b.add_batch(*bad)
    assert b.num_postings == 0
    b.add_batch(u64, u32, f32)
    assert b.num_postings == 1
    with pytest.raises(TypeError):
        _core.Builder(10.0)
    with pytest.raises(TypeError):
        _core.Builder(np.uint32(10))


def test_staged_publishes_whole_or_rolls_back(tmp_path: Path) -> None:
    """The one staged-write helper: a failure inside the block leaves ``final`` as it was and no staging folder."""
    from indexer.atomic import staged

    final = tmp_path / "deep" / "out"
    with staged(final, overwrite=False) as work:
        (work / "a").write_text("one")
    assert (final / "a").read_text() == "one"
    with pytest.raises(RuntimeError), staged(final, overwrite=True) as work:
        (work / "a").write_text("two")
        raise RuntimeError("crash mid-write")
    assert (final / "a").read_text() == "one"
    with pytest.raises(FileExistsError), staged(final, overwrite=False) as work:
        (work / "b").write_text("x")
    assert sorted(p.name for p in final.parent.iterdir()) == ["out"]  # nothing left beside it
    with staged(final, overwrite=True) as work:
        (work / "a").write_text("three")
    assert (final / "a").read_text() == "three" and sorted(p.name for p in final.parent.iterdir()) == ["out"]
