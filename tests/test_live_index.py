"""LiveIndex (segments + SQLite catalog) against a plain dict of what was written."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from live_model import DIM, OPERATIONS, SPEC, VOCAB, apply, check, churn, docs

from indexer import SparseBatch
from retrieval.live import LiveIndex, map_tensors, merge_plan
from retrieval.merger import Merger


@given(st.integers(0, 2**32 - 1), OPERATIONS)
def test_operations_match_a_dict_and_survive_reopening(tmp_path_factory, seed: int, ops) -> None:
    rng = np.random.default_rng(seed)
    path = tmp_path_factory.mktemp("live") / "idx"
    index = LiveIndex.create(path, SPEC)
    model: dict = {}
    for op, n in ops:
        apply(index, op, n, rng, model)
    check(index, model, np.random.default_rng(seed))
    index.close()
    reopened = LiveIndex.open(path)
    check(reopened, model, np.random.default_rng(seed))
    assert len(list((path / "segments").iterdir())) == len(reopened.segments)


def test_bad_writes_change_nothing(tmp_path: Path) -> None:
    index = LiveIndex.create(tmp_path / "idx", SPEC)
    rng = np.random.default_rng(0)
    batch, dense, _ = docs(rng, ["a", "b"])
    with pytest.raises(ValueError, match="dense"):
        index.upsert(["a", "b"], batch, dense.astype(np.float64))
    with pytest.raises(ValueError, match="unique"):
        index.upsert(["a", "a"], batch, dense)
    with pytest.raises(ValueError, match="term id"):
        index.upsert(["a", "b"], SparseBatch.from_rows([{VOCAB: 1.0}, {1: 1.0}]), dense)
    with pytest.raises(ValueError, match="finite"):
        index.upsert(["a", "b"], batch, np.full((2, DIM), np.nan, np.float32))
    assert index.num_docs == 0 and index.segments == ()
    assert list((tmp_path / "idx" / "segments").iterdir()) == []
    with pytest.raises(FileExistsError):
        LiveIndex.create(tmp_path / "idx", SPEC)


CRASH = {
    # the new segment is on disk, the catalog never names it
    "upsert": "live.LiveIndex._transaction = lambda *a, **k: os._exit(3)\nindex.upsert(['x', 'a'], batch, dense)",
    # the merged segment is on disk, its commit never happens
    "merge": "import indexer.atomic as atomic\nreal = atomic.publish_dir\n"
    "atomic.publish_dir = lambda *a, **k: (real(*a, **k), os._exit(3))\n"
    "index.merge(max_segments=1, count=2)",
}


@pytest.mark.parametrize("crash", sorted(CRASH))
def test_a_crash_mid_write_opens_in_the_last_committed_state(tmp_path: Path, crash: str) -> None:
    path = tmp_path / "idx"
    index = LiveIndex.create(path, SPEC)
    rng = np.random.default_rng(1)
    model: dict = {}
    for ids in (["a", "b"], ["c"]):
        batch, dense, new = docs(rng, ids)
        index.upsert(ids, batch, dense, texts=[new[d][2] for d in ids])
        model.update(new)
    index.close()
    script = (
        textwrap.dedent(
            f"""
        import os
        import numpy as np
        import retrieval.live as live
        from indexer import SparseBatch
        index = live.LiveIndex.open({str(path)!r})
        batch = SparseBatch.from_rows([{{1: 1.0}}, {{2: 2.0}}])
        dense = np.ones((2, {DIM}), np.float32)
        """
        )
        + CRASH[crash]
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    assert len(list((path / "segments").iterdir())) == 3  # an orphan segment is left behind
    reopened = LiveIndex.open(path)
    check(reopened, model, rng)
    assert len(list((path / "segments").iterdir())) == len(reopened.segments) == 2


def test_concurrent_writes_searches_and_background_merges_lose_nothing(tmp_path: Path) -> None:
    index = LiveIndex.create(tmp_path / "idx", SPEC)
    merger = Merger(lambda: [index], interval=0.01)
    merger.start()
    written: dict = {}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            churn(index, w, written, lock, merger.poke)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    def searcher() -> None:
        rng = np.random.default_rng(99)
        try:
            for _ in range(200):
                hits, _ = index.search_sparse(np.array([1, 2, 3], np.uint32), np.ones(3, np.float32), k=10)
                assert len({d for d, _ in hits}) == len(hits)
                index.search_dense(rng.normal(size=DIM).astype(np.float32), 3)
                for d, _ in hits:  # a merge may unlink the segment meanwhile: its memory map stays readable
                    where = index.locate(d)
                    if where is not None:
                        assert len(where[0].vector(where[1])[0]) > 0
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)] + [threading.Thread(target=searcher)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    merger.stop()
    assert not errors, errors
    assert merger.merges > 0 and len(index.segments) <= 16
    check(index, written, np.random.default_rng(5))
    index.close()
    check(LiveIndex.open(tmp_path / "idx"), written, np.random.default_rng(6))
    assert os.listdir(tmp_path) == ["idx"]


@given(
    st.dictionaries(
        st.text("abcdefgh", min_size=1, max_size=6),
        st.tuples(
            st.sampled_from(["uint8", "uint32", "uint64", "int64", "float32"]), st.lists(st.integers(0, 5), max_size=3)
        ),
        max_size=4,
    )
)
def test_mapped_tensors_equal_safetensors_own_loader(tmp_path_factory, spec: dict) -> None:
    from safetensors.numpy import load_file, save_file

    rng = np.random.default_rng(0)
    tensors = {name: np.asarray(rng.random(shape) * 200).astype(dtype) for name, (dtype, shape) in spec.items()}
    path = tmp_path_factory.mktemp("st") / "t.safetensors"
    save_file(tensors, str(path))
    mapped = map_tensors(path)
    want = load_file(str(path))
    assert mapped.keys() == want.keys()
    for name, t in want.items():
        assert mapped[name].dtype == t.dtype and mapped[name].shape == t.shape
        np.testing.assert_array_equal(mapped[name], t)
    path.unlink()  # the map outlives the file
    for name, t in want.items():
        np.testing.assert_array_equal(mapped[name], t)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x05\x00",
        (1000).to_bytes(8, "little") + b"{}",
        (2).to_bytes(8, "little") + b"[]",
        (40).to_bytes(8, "little") + b'{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}'.ljust(40),
    ],
)
def test_malformed_tensor_files_raise_value_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(data)
    with pytest.raises(ValueError, match="bad.safetensors"):
        map_tensors(path)


def test_merge_plan_expunges_half_dead_segments_first(tmp_path: Path) -> None:
    index = LiveIndex.create(tmp_path / "idx", SPEC)
    rng = np.random.default_rng(3)
    for i in range(5):
        ids = [f"s{i}-{j}" for j in range(4)]
        batch, dense, _ = docs(rng, ids)
        index.upsert(ids, batch, dense)
    assert merge_plan(index.segments, max_segments=16, count=8) == []
    assert [s.seq for s in merge_plan(index.segments, max_segments=4, count=2)] == [1, 2]
    index.delete(["s3-0", "s3-1", "s3-2"])
    assert [s.seq for s in merge_plan(index.segments, max_segments=16, count=8)] == [4]
    assert index.merge() and index.num_docs == 17
    assert [s.rows - s.dead for s in index.segments] == [4, 4, 4, 4, 1]
    assert not index.merge()


@given(st.integers(0, 2**32 - 1), st.integers(1, 9), st.integers(1, 3))
def test_the_batch_path_equals_one_query_at_a_time(tmp_path_factory, seed: int, nq: int, threads: int) -> None:
    """search_sparse_batch / search_dense_batch (the service's /search/batch) against their one-row forms, with
    several segments, deleted documents and queries without terms."""
    rng = np.random.default_rng(seed)
    index = LiveIndex.create(tmp_path_factory.mktemp("live") / "idx", SPEC)
    pool = [f"d{i}" for i in range(25)]
    for _ in range(3):
        ids = list(rng.choice(pool, size=8, replace=False))
        batch, dense, _ = docs(rng, ids)
        index.upsert(ids, batch, dense)
    index.delete(list(rng.choice(pool, size=5, replace=False)))
    rows = [{} if rng.random() < 0.2 else {int(t): float(rng.uniform(0.1, 2)) for t in rng.choice(VOCAB, 3)}
            for _ in range(nq)]  # fmt: skip
    queries = SparseBatch.from_rows(rows)
    k = int(rng.integers(1, 12))
    got = index.search_sparse_batch(queries, k, threads=threads)
    for i in range(nq):
        idx, val = queries.row(i)
        assert got[i] == (index.search_sparse(idx, val, k) if len(idx) else ([], 0))
    vectors = rng.normal(size=(nq, DIM)).astype(np.float32)
    for got_row, v in zip(index.search_dense_batch(vectors, k), vectors):  # a matrix product rounds differently
        want = index.search_dense(v, k)
        assert [d for d, _ in got_row] == [d for d, _ in want]
        np.testing.assert_allclose([s for _, s in got_row], [s for _, s in want], rtol=1e-5, atol=1e-6)
    index.close()


@given(st.integers(0, 2**32 - 1), st.sampled_from([0.0, 0.1, 0.5, 1.0]))
def test_filtered_search_is_exact(tmp_path_factory, seed: int, density: float) -> None:
    """A metadata filter on the live index (segments, deletes, replaced rows): the sparse hits are exactly the
    matching live documents the query scores, the top k a prefix of the full list; dense ranks only them."""
    from retrieval.filters import matches, parse

    rng = np.random.default_rng(seed)
    index = LiveIndex.create(tmp_path_factory.mktemp("live") / "idx", SPEC)
    pool = [f"d{i}" for i in range(30)]
    model, meta = {}, {}
    for _ in range(3):
        ids = list(rng.choice(pool, size=10, replace=False))
        batch, dense, new = docs(rng, ids)
        md = [{"tag": "a" if rng.random() < density else "b", "n": int(rng.integers(0, 5))} for _ in ids]
        index.upsert(ids, batch, dense, metadata=md)
        model.update(new)
        meta.update(zip(ids, md))
    for d in rng.choice(pool, size=4, replace=False):
        index.delete([d])
        model.pop(d, None)
    raw = {"or": [{"field": "tag", "eq": "a"}, {"field": "n", "gte": 3}]}
    node = parse(raw)
    passing = {d for d in model if matches(node, meta[d])}
    q = {int(t): 1.0 for t in rng.choice(VOCAB, size=4, replace=False)}
    idx = np.array(sorted(q), np.uint32)
    exact = {d: sum(w.get(t, 0.0) for t in q) for d, (w, _, _) in model.items()}
    batch = SparseBatch(np.array([0, len(idx)], np.uint64), idx, np.ones(len(idx), np.float32))
    ((hits, _),) = index.search_sparse_batch(batch, k=100, filter=node)
    assert {d for d, _ in hits} == {d for d in passing if exact[d] > 0}
    ((top, _),) = index.search_sparse_batch(batch, k=2, filter=node)
    assert top == hits[:2]
    v = rng.normal(size=DIM).astype(np.float32)
    (dense_hits,) = index.search_dense_batch(v[None, :], 5, filter=node)
    want = sorted(passing, key=lambda d: -float(model[d][1] @ v))[:5]
    assert [d for d, _ in dense_hits] == want
    index.close()


@given(
    st.integers(0, 2**32 - 1),
    st.lists(st.tuples(st.sampled_from(["upsert", "delete", "merge"]), st.integers(1, 12)), min_size=1, max_size=10),
)
def test_a_fixed_impact_scale_makes_scores_independent_of_segments(tmp_path_factory, seed: int, ops) -> None:
    """With ``max_weight`` fixed, any history of writes and merges scores every document exactly as one segment
    built from the final documents does (bit for bit): what sharded live indexes rely on."""
    rng = np.random.default_rng(seed)
    root = tmp_path_factory.mktemp("fixed")
    spec = replace(SPEC, max_weight=3.0)
    index = LiveIndex.create(root / "idx", spec)
    model: dict = {}
    pool = [f"d{i}" for i in range(30)]
    for op, n in ops:
        if op == "upsert":
            ids = list(rng.choice(pool, size=n, replace=False))
            batch, dense, new = docs(rng, ids)
            index.upsert(ids, batch, dense)
            model.update(new)
        elif op == "delete":
            ids = list(rng.choice(pool, size=n, replace=False))
            index.delete(ids)
            for d in ids:
                model.pop(d, None)
        else:
            index.merge(max_segments=1, count=2)
    one = LiveIndex.create(root / "one", spec)
    if model:
        ids = sorted(model)
        one.upsert(ids, SparseBatch.from_rows([model[d][0] for d in ids]), np.stack([model[d][1] for d in ids]))
    for _ in range(3):
        idx = np.sort(rng.choice(VOCAB, size=4, replace=False)).astype(np.uint32)
        val = rng.uniform(0.1, 2.0, size=4).astype(np.float32)
        got, _ = index.search_sparse(idx, val, k=40)
        want, _ = one.search_sparse(idx, val, k=40)
        assert dict(got) == dict(want)
    index.close()
    one.close()


def test_a_weight_above_the_fixed_scale_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    index = LiveIndex.create(tmp_path / "idx", replace(SPEC, max_weight=2.0))
    rng = np.random.default_rng(1)
    _, dense, _ = docs(rng, ["a", "b"])
    with pytest.raises(ValueError, match=r"above this index's fixed impact scale \(max_weight 2\)"):
        index.upsert(["a", "b"], SparseBatch.from_rows([{1: 1.0}, {2: 2.5}]), dense)
    assert index.num_docs == 0 and list((tmp_path / "idx" / "segments").iterdir()) == []
    assert index.upsert(["a", "b"], SparseBatch.from_rows([{1: 1.0}, {2: 2.0}]), dense) == 2
    for bad in (0.0, -1.0, float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match="max_weight must be a positive finite number"):
            LiveIndex.create(tmp_path / f"bad-{bad}", replace(SPEC, max_weight=bad))
