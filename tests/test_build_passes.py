"""build_index (bounded memory, term-range passes) against IndexBuilder (all in memory):
the same documents must give byte-identical index directories."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from conftest import corpora, random_batch
from hypothesis import given
from hypothesis import strategies as st

from indexer import Index, IndexBuilder, SparseBatch, _core, build_index
from indexer.builder import term_ranges

_counter = itertools.count()


def split(docs: SparseBatch, parts: int) -> list[tuple[list[str], SparseBatch]]:
    bounds = np.linspace(0, docs.num_rows, parts + 1).astype(int)
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        a, b = int(docs.indptr[lo]), int(docs.indptr[hi])
        sub = SparseBatch(
            (docs.indptr[lo : hi + 1] - docs.indptr[lo]).astype(np.uint64), docs.indices[a:b], docs.values[a:b]
        )
        out.append(([f"doc-{i}" for i in range(lo, hi)], sub))
    return out


def files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


@given(corpora(max_docs=400, max_vocab=80, max_nnz=25), st.integers(1, 5), st.integers(1, 400))
def test_passes_give_byte_identical_index(tmp_path_factory, params, parts: int, max_postings: int) -> None:
    rng, nrows, vocab, nnz = params
    batches = split(random_batch(rng, nrows, vocab, nnz), parts)
    tmp = tmp_path_factory.mktemp(f"b{next(_counter)}")
    with IndexBuilder(tmp / "memory", vocab_size=vocab, model_id="m", vocab_hash="h") as b:
        for ids, batch in batches:
            b.add(ids, batch)
    manifest = build_index(
        tmp / "passes", lambda: batches, vocab_size=vocab, model_id="m", vocab_hash="h", max_postings=max_postings
    )
    assert files(tmp / "passes") == files(tmp / "memory")
    assert manifest.num_docs == nrows
    Index.open(tmp / "passes")  # verified on open


@given(st.lists(st.integers(0, 50), min_size=1, max_size=40), st.integers(1, 60))
def test_term_ranges_cover_the_vocabulary_within_the_budget(df: list[int], max_postings: int) -> None:
    arr = np.array(df, dtype=np.uint32)
    ranges = term_ranges(arr, max_postings)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(df)
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    for lo, hi in ranges:
        assert hi > lo
        assert arr[lo:hi].sum() <= max_postings or hi - lo == 1
    # greedy: no two neighbouring ranges would fit together
    for (lo, _), (_, hi) in zip(ranges, ranges[1:]):
        assert arr[lo:hi].sum() > max_postings
    assert ranges == greedy_ranges(df, max_postings)


def greedy_ranges(df: list[int], max_postings: int) -> list[tuple[int, int]]:
    """term_ranges' slow twin: one step per term."""
    ranges, lo, held = [], 0, 0
    for t, n in enumerate(df):
        if held + n > max_postings and t > lo:
            ranges.append((lo, t))
            lo, held = t, 0
        held += n
    return [*ranges, (lo, len(df))]


def test_many_passes_over_long_lists(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    batches = split(random_batch(rng, 3000, 40, 12), 7)
    calls = 0

    def source():
        nonlocal calls
        calls += 1
        return iter(batches)

    with IndexBuilder(tmp_path / "memory", vocab_size=40) as b:
        for ids, batch in batches:
            b.add(ids, batch)
    df = Index.open(tmp_path / "memory")._core.term_df()
    build_index(tmp_path / "passes", source, vocab_size=40, max_postings=int(df.max()) // 2)
    assert calls == 1 + len(term_ranges(df, int(df.max()) // 2)) and calls > 4
    assert files(tmp_path / "passes") == files(tmp_path / "memory")


def test_input_that_changes_between_passes_publishes_nothing(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    first = split(random_batch(rng, 200, 30, 10), 2)
    second = split(random_batch(rng, 200, 30, 10), 2)
    calls = itertools.count()
    with pytest.raises(ValueError, match="postings, expected|other doc ids"):
        build_index(tmp_path / "x", lambda: first if next(calls) == 0 else second, vocab_size=30, max_postings=50)
    assert list(tmp_path.iterdir()) == []
    renamed = [([f"other-{i}" for i in range(len(ids))], b) for ids, b in first]
    calls = itertools.count()
    with pytest.raises(ValueError, match="other doc ids"):
        build_index(tmp_path / "x", lambda: first if next(calls) == 0 else renamed, vocab_size=30, max_postings=50)
    assert list(tmp_path.iterdir()) == []


def test_bad_input_is_refused_before_writing(tmp_path: Path) -> None:
    batch = SparseBatch.from_rows([{1: 1.0}, {2: 2.0}])
    with pytest.raises(ValueError, match="duplicate document id"):
        build_index(tmp_path / "x", lambda: [(["a", "b"], batch), (["a", "c"], batch)], vocab_size=10)
    with pytest.raises(ValueError, match="term id"):
        build_index(tmp_path / "x", lambda: [(["a", "b"], batch)], vocab_size=2)
    with pytest.raises(ValueError, match="max_postings"):
        build_index(tmp_path / "x", lambda: [(["a", "b"], batch)], vocab_size=10, max_postings=0)
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_misuse_and_leaves_no_file(tmp_path: Path) -> None:
    batch = SparseBatch.from_rows([{1: 1.0, 5: 2.0}, {5: 0.5}])
    counter = _core.Builder(8, 0, 0)
    counter.add_batch(*batch)
    df = counter.df()
    assert df.tolist() == [0, 1, 0, 0, 0, 2, 0, 0] and counter.num_postings == 3 and counter.max_weight == 2.0
    target = tmp_path / "postings.bin"
    w = _core.IndexWriter(str(target), df, 2, counter.max_weight)
    late = _core.Builder(8, 4, 8, df)
    late.add_batch(*batch)
    with pytest.raises(ValueError, match="term order"):
        w.append(late)
    early = _core.Builder(8, 0, 4, df)
    early.add_batch(*batch)
    w.append(early)
    with pytest.raises(ValueError, match="never written"):
        w.finish()
    short = _core.Builder(8, 4, 8, df)
    short.add_batch(*SparseBatch.from_rows([{5: 0.5}, {1: 1.0}]))
    with pytest.raises(ValueError, match="number of documents|postings, expected"):
        w.append(short)
    assert w.next_term == 4
    del w
    assert list(tmp_path.iterdir()) == []  # the temporary file went with the writer
    with pytest.raises(ValueError, match="term range"):
        _core.Builder(8, 5, 4)
    with pytest.raises(ValueError, match="keeps every term"):
        early.write(str(target))
