"""Every native search path against indexer.reference on random corpora."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from conftest import corpora, random_batch
from hypothesis import given
from hypothesis import strategies as st

from indexer import Index, IndexBuilder, SparseBatch, _core
from indexer.reference import ReferenceIndex

KERNELS = _core.available_kernels()
# every way to visit the postings (Index.search_batch's algorithm, block_docs), each held to the same reference:
# doc blocks of one document, of a few, and wider than most random corpora here
ALGORITHMS = [
    ("exhaustive", 64),
    ("block_max", 1),
    ("block_max", 4),
    ("block_max", 64),
    ("block_forward", 1),
    ("block_forward", 4),
    ("block_forward", 256),
    ("auto", 64),
]
_counter = itertools.count()


@pytest.fixture(autouse=True)
def _restore_kernel():
    before = _core.active_kernel()
    yield
    _core.select_kernel(before)


def build(tmp: Path, docs: SparseBatch, vocab: int, batches: int = 1) -> Index:
    path = tmp / f"idx{next(_counter)}"
    with IndexBuilder(path, vocab_size=vocab) as b:
        bounds = np.linspace(0, docs.num_rows, batches + 1).astype(int)
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            sub = SparseBatch(
                (docs.indptr[lo : hi + 1] - docs.indptr[lo]).astype(np.uint64),
                docs.indices[int(docs.indptr[lo]) : int(docs.indptr[hi])],
                docs.values[int(docs.indptr[lo]) : int(docs.indptr[hi])],
            )
            b.add([f"doc-{i}" for i in range(lo, hi)], sub)
    return Index.open(path)


def nonempty_queries(ref: ReferenceIndex, queries: SparseBatch) -> SparseBatch:
    rows = []
    for i in range(queries.num_rows):
        t, w = queries.row(i)
        try:
            ref.quantize_query(t, w)
        except ValueError:
            continue
        rows.append((t.tolist(), w.tolist()))
    return SparseBatch.from_rows(rows)


def check_against_reference(index: Index, ref: ReferenceIndex, queries: SparseBatch, k: int) -> None:
    for kernel, (algorithm, block_docs) in itertools.product(KERNELS, ALGORITHMS):
        _core.select_kernel(kernel)
        res = index.search_batch(queries, k=k, threads=2, algorithm=algorithm, block_docs=block_docs)
        how = (kernel, algorithm, block_docs)
        for i in range(queries.num_rows):
            expect = ref.search(*queries.row(i), k=k)
            n = int(res.counts[i])
            assert n == len(expect), how
            assert res.docs[i, :n].tolist() == [h.doc for h in expect], how
            assert res.scores[i, :n].tolist() == [h.score for h in expect], how
            assert (res.docs[i, n:] == -1).all() and (res.scores[i, n:] == 0).all()


@given(corpora())
def test_search_matches_reference(tmp_path_factory, params) -> None:
    rng, nrows, vocab, nnz = params
    docs = random_batch(rng, nrows, vocab, nnz)
    tmp = tmp_path_factory.mktemp("p")
    index = build(tmp, docs, vocab, batches=int(rng.integers(1, 4)))
    ref = ReferenceIndex(docs, vocab)
    assert index.num_docs == nrows and index.num_postings == ref.impacts.nnz
    for term in range(vocab):
        got_docs, got_imp = index.postings(term)
        want_docs, want_imp = ref.postings(term)
        np.testing.assert_array_equal(got_docs, want_docs)
        np.testing.assert_array_equal(got_imp, want_imp)
    queries = nonempty_queries(ref, random_batch(rng, 12, vocab, 12, zero_rate=0.2))
    if queries.num_rows:
        for k in (1, 3, 1000):
            check_against_reference(index, ref, queries, k)


@given(corpora(), st.sampled_from([0.0, 0.01, 0.1, 0.5, 0.9, 1.0]))
def test_filtered_search_matches_brute_force_over_the_allowed_documents(tmp_path_factory, params, density) -> None:
    """The allowed-document bitmap, inside native scoring, for every kernel: the top k under the filter equals the
    reference scoring of the documents that pass it (no over-fetching: k = 1 is exact too)."""
    rng, nrows, vocab, nnz = params
    docs = random_batch(rng, nrows, vocab, nnz)
    index = build(tmp_path_factory.mktemp("f"), docs, vocab, batches=int(rng.integers(1, 4)))
    ref = ReferenceIndex(docs, vocab)
    queries = nonempty_queries(ref, random_batch(rng, 8, vocab, 12, zero_rate=0.2))
    if not queries.num_rows:
        return
    allowed = rng.random(nrows) < density
    for kernel, (algorithm, block_docs) in itertools.product(KERNELS, ALGORITHMS):
        _core.select_kernel(kernel)
        for k in (1, 3, 1000):
            res = index.search_batch(queries, k=k, threads=2, allowed=allowed, algorithm=algorithm,
                                     block_docs=block_docs)  # fmt: skip
            how = (kernel, algorithm, block_docs, k)
            for i in range(queries.num_rows):
                expect = ref.search(*queries.row(i), k=k, allowed=allowed)
                n = int(res.counts[i])
                assert res.docs[i, :n].tolist() == [h.doc for h in expect], how
                assert res.scores[i, :n].tolist() == [h.score for h in expect], how
                assert all(allowed[d] for d in res.docs[i, :n])
    with pytest.raises(TypeError, match="bool array"):
        index.search_batch(queries, k=3, allowed=allowed.astype(np.uint8))
    with pytest.raises(TypeError, match="bool array"):
        index.search_batch(queries, k=3, allowed=allowed[:-1])


def test_long_lists_many_blocks(tmp_path) -> None:
    """A few terms in almost every document: lists of thousands of postings, full and partial blocks."""
    rng = np.random.default_rng(7)
    docs = random_batch(rng, 5000, 6, 8)
    index = build(tmp_path, docs, 6, batches=3)
    ref = ReferenceIndex(docs, 6)
    for term in range(6):
        np.testing.assert_array_equal(index.postings(term)[0], ref.postings(term)[0])
        np.testing.assert_array_equal(index.postings(term)[1], ref.postings(term)[1])
    queries = nonempty_queries(ref, random_batch(rng, 20, 6, 6, zero_rate=0.0))
    check_against_reference(index, ref, queries, 10)
    check_against_reference(index, ref, queries, 1000)


def test_single_document_and_duplicate_query_terms(tmp_path) -> None:
    docs = SparseBatch.from_rows([{3: 0.5, 1: 2.0}])
    index = build(tmp_path, docs, 5)
    hits = index.search(np.array([3, 3, 1], dtype=np.uint32), np.array([0.25, 0.25, 1.0], dtype=np.float32), k=5)
    assert [h.doc_id for h in hits] == ["doc-0"]
    ref = ReferenceIndex(docs, 5).search(np.array([3, 3, 1], np.uint32), np.array([0.25, 0.25, 1.0], np.float32), 5)
    assert hits[0].score == ref[0].score
    # the float score is close to the float dot product 0.5*0.5 + 2.0*1.0
    assert hits[0].score == pytest.approx(2.25, rel=1e-2)


def test_empty_index_and_terms_without_postings(tmp_path) -> None:
    docs = SparseBatch.from_rows([{}, {0: 0.0}])
    index = build(tmp_path, docs, 4)
    assert index.num_docs == 2 and index.num_postings == 0
    assert index.search(np.array([2], np.uint32), np.array([1.0], np.float32), k=10) == []


def test_ties_go_to_the_smaller_doc(tmp_path) -> None:
    docs = SparseBatch.from_rows([{0: 1.0}] * 50)
    index = build(tmp_path, docs, 1)
    hits = index.search(np.array([0], np.uint32), np.array([1.0], np.float32), k=7)
    assert [h.doc_id for h in hits] == [f"doc-{i}" for i in range(7)]


def test_thread_counts_agree(tmp_path) -> None:
    rng = np.random.default_rng(3)
    docs = random_batch(rng, 2000, 200, 30)
    index = build(tmp_path, docs, 200)
    ref = ReferenceIndex(docs, 200)
    queries = nonempty_queries(ref, random_batch(rng, 64, 200, 15))
    base = index.search_batch(queries, k=20, threads=1)
    for threads in (2, 3, 16, 1000):
        other = index.search_batch(queries, k=20, threads=threads)
        np.testing.assert_array_equal(base.docs, other.docs)
        np.testing.assert_array_equal(base.scores, other.scores)
        np.testing.assert_array_equal(base.postings, other.postings)


def test_float_recall_is_high(tmp_path) -> None:
    """8-bit impacts and 16-bit query weights keep the float ranking almost intact."""
    rng = np.random.default_rng(11)
    docs = random_batch(rng, 3000, 500, 60, zero_rate=0.0)
    index = build(tmp_path, docs, 500)
    ref = ReferenceIndex(docs, 500)
    queries = nonempty_queries(ref, random_batch(rng, 50, 500, 20, zero_rate=0.0))
    res = index.search_batch(queries, k=10, threads=2)
    recalls = []
    for i in range(queries.num_rows):
        want = set(ref.search_float(*queries.row(i), k=10))
        got = set(res.docs[i, : res.counts[i]].tolist())
        recalls.append(len(want & got) / max(len(want), 1))
    assert np.mean(recalls) >= 0.97


def test_canonical_reference_equals_reference() -> None:
    from indexer.reference import canonical_reference, merge_terms

    rng = np.random.default_rng(5)
    raw = random_batch(rng, 400, 80, 20)
    canon = SparseBatch.from_rows([tuple(x.tolist() for x in merge_terms(*raw.row(i))) for i in range(raw.num_rows)])
    a, b = ReferenceIndex(raw, 80), canonical_reference(canon, 80)
    assert a.scale == b.scale and (a.impacts != b.impacts).nnz == 0
    with pytest.raises(ValueError, match="not canonical"):
        canonical_reference(raw, 80)


def test_search_releases_the_gil(tmp_path) -> None:
    """A Python thread keeps running while a long native search is in flight."""
    import threading
    import time

    rng = np.random.default_rng(2)
    docs = random_batch(rng, 20000, 400, 60, zero_rate=0.0)
    index = build(tmp_path, docs, 400)
    queries = random_batch(rng, 3000, 400, 40, zero_rate=0.0)
    queries = SparseBatch.from_rows(
        [tuple(x.tolist() for x in queries.row(i)) for i in range(3000) if queries.row(i)[0].size]
    )
    counter = [0]
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            counter[0] += 1

    thread = threading.Thread(target=spin)
    thread.start()
    try:
        t0, c0 = time.perf_counter(), counter[0]
        index.search_batch(queries, k=10, threads=1)
        took, during = time.perf_counter() - t0, counter[0] - c0
        c1 = counter[0]
        time.sleep(took)
        idle = counter[0] - c1
    finally:
        stop.set()
        thread.join()
    assert took > 0.02, "workload too small to tell"
    assert during > 0.3 * idle, (during, idle)


@given(corpora())
def test_sparse_batch_take_nonempty_and_to_scipy_agree(params) -> None:
    """SparseBatch.take, .nonempty and .to_scipy against the rows read one by one."""
    rng, nrows, vocab, nnz = params
    docs = random_batch(rng, nrows, vocab, nnz)
    dense = docs.to_scipy(vocab).toarray()
    assert dense.shape == (nrows, vocab)
    for i in range(nrows):
        want = np.zeros(vocab, np.float32)  # duplicate terms summed in row order, as SciPy does
        t, w = docs.row(i)
        np.add.at(want, t.astype(np.int64), w)
        np.testing.assert_array_equal(dense[i], want)
    rows, kept = docs.nonempty()
    assert rows == [i for i in range(nrows) if len(docs.row(i)[0])] and kept.num_rows == len(rows)
    assert all(np.array_equal(kept.row(j)[0], docs.row(i)[0]) for j, i in enumerate(rows))
    picked = [int(x) for x in rng.integers(0, nrows, size=5)] if nrows else []
    sub = docs.take(picked)
    assert sub.num_rows == len(picked)
    for j, i in enumerate(picked):
        for a, b in zip(sub.row(j), docs.row(i)):
            np.testing.assert_array_equal(a, b)


def test_pruning_breaks_ties_like_exhaustive(tmp_path) -> None:
    """2,000 equal documents (every score tied) and a few better ones spread out: block-max pruning visits doc
    blocks out of doc order (block_max in two phases) and must still rank ties by the smaller doc id."""
    rows = [{1: 1.0, 2: 0.5} for _ in range(2000)]
    for d in (5, 777, 1999):
        rows[d] = {1: 1.0, 2: 0.5, 3: 0.25}
    docs = SparseBatch.from_rows(rows)
    index = build(tmp_path, docs, 4, batches=2)
    queries = SparseBatch.from_rows([{1: 1.0, 2: 1.0, 3: 1.0}, {2: 1.0}])
    for k in (1, 10, 1000):
        want = index.search_batch(queries, k=k, threads=1)
        for algorithm, block_docs in [("block_max", b) for b in (1, 8, 64, 4096)] + [
            ("block_forward", b) for b in (1, 8, 256)
        ]:
            got = index.search_batch(queries, k=k, threads=1, algorithm=algorithm, block_docs=block_docs)
            np.testing.assert_array_equal(got.docs, want.docs)
            np.testing.assert_array_equal(got.scores, want.scores)
    assert want.docs[0, :4].tolist() == [5, 777, 1999, 0]


def test_search_algorithm_arguments(tmp_path) -> None:
    index = build(tmp_path, SparseBatch.from_rows([{1: 1.0}, {2: 1.0}]), 4)
    q = SparseBatch.from_rows([{1: 1.0}])
    assert index.pruning_bytes("block_forward", 8) == 0  # built by the first search that needs them
    index.search_batch(q, algorithm="block_max", block_docs=8)
    maxima = index.pruning_bytes("block_max", 8)
    assert maxima > 0 and index.pruning_bytes("block_forward", 8) == maxima
    index.search_batch(q, algorithm="block_forward", block_docs=8)
    assert index.pruning_bytes("block_forward", 8) > maxima and index.pruning_bytes("exhaustive") == 0
    with pytest.raises(ValueError, match="unknown algorithm"):
        index.search_batch(q, algorithm="wand")
    for bad in (0, 3, 48, -8, 1 << 21):
        with pytest.raises(ValueError, match="block_docs"):
            index.search_batch(q, algorithm="block_max", block_docs=bad)
    with pytest.raises(ValueError, match="at most 256"):
        index.search_batch(q, algorithm="block_forward", block_docs=512)
    with pytest.raises(ValueError, match="at most 256"):  # the native check, behind the Python one
        index._core.search_batch(*q, 1, 1, None, "block_forward", 9)
    assert index.search_batch(q, k=5, algorithm="block_max", block_docs=1).docs[0, :1].tolist() == [0]
    assert index.search_batch(q, k=5, algorithm="block_forward", block_docs=256).docs[0, :1].tolist() == [0]


def test_dense_and_sparse_block_maxima(tmp_path) -> None:
    """Doc-block bounds mix dense rows (a term in at least 1/16 of the doc blocks) and per-entry lists (rare
    terms): queries of rare terms only (no dense row), of common ones only, and of both, held to the reference."""
    rng = np.random.default_rng(11)
    rows = []
    for d in range(4000):
        row = {0: float(rng.uniform(0.1, 2.0))}  # in every document: a dense row
        if d % 3 == 0:
            row[1] = float(rng.uniform(0.1, 2.0))
        for t in rng.choice(np.arange(2, 300), size=2, replace=False):  # rare: about 27 documents each
            row[int(t)] = float(rng.uniform(0.1, 2.0))
        rows.append(row)
    docs = SparseBatch.from_rows(rows)
    index = build(tmp_path, docs, 300, batches=2)
    ref = ReferenceIndex(docs, 300)
    queries = SparseBatch.from_rows([{5: 1.0, 17: 0.5, 230: 2.0}, {0: 1.0, 1: 0.3}, {0: 0.2, 9: 1.0, 99: 1.5}])
    check_against_reference(index, ref, queries, 10)
    check_against_reference(index, ref, queries, 1000)


def test_default_algorithm_comes_from_the_environment(tmp_path, monkeypatch) -> None:
    """LSR_SEARCH_ALGORITHM (set by lsr search --algorithm and the service's search_algorithm) is the default of
    every search that names none; an unknown name is refused, not ignored."""
    rng = np.random.default_rng(5)
    docs = random_batch(rng, 300, 40, 10)
    index = build(tmp_path, docs, 40)
    queries = nonempty_queries(ReferenceIndex(docs, 40), random_batch(rng, 6, 40, 8, zero_rate=0.0))
    want = index.search_batch(queries, k=10, algorithm="exhaustive")
    assert index.pruning_bytes("block_forward", 8) == 0
    monkeypatch.setenv("LSR_SEARCH_ALGORITHM", "auto")
    got = index.search_batch(queries, k=10)
    np.testing.assert_array_equal(got.docs, want.docs)
    np.testing.assert_array_equal(got.scores, want.scores)
    assert index.pruning_bytes("block_forward", 8) > 0  # auto at k=10 took block_forward
    monkeypatch.setenv("LSR_SEARCH_ALGORITHM", "wand")
    with pytest.raises(ValueError, match="LSR_SEARCH_ALGORITHM"):
        index.search_batch(queries, k=10)


def test_auto_keeps_the_blocks_or_hands_over_midway(tmp_path) -> None:
    """Algorithm "auto" decides per query: a selective query keeps block_forward (fewer postings than exhaustive),
    one whose blocks above its k-th score would cost more is handed to exhaustive search after its first blocks
    were scored (more postings than exhaustive: the blocks, then every posting). The hits equal exhaustive's
    (itself held to the reference above) on every kernel."""
    rng = np.random.default_rng(11)
    n, vocab = 30_000, 60
    docs = random_batch(rng, n, vocab, 12, zero_rate=0.0)
    index = build(tmp_path, docs, vocab)
    queries = nonempty_queries(ReferenceIndex(docs, vocab), random_batch(rng, 12, vocab, 3, zero_rate=0.0))
    kept = handed = 0
    for kernel in KERNELS:
        _core.select_kernel(kernel)
        for k in (1, 10, 1000):
            want = index.search_batch(queries, k=k, threads=1, algorithm="exhaustive")
            got = index.search_batch(queries, k=k, threads=1, algorithm="auto")
            np.testing.assert_array_equal(got.docs, want.docs)
            np.testing.assert_array_equal(got.scores, want.scores)
            kept += int((got.postings < want.postings).sum())
            handed += int((got.postings > want.postings).sum())
    assert kept > 0 and handed > 0, (kept, handed)


def test_forward_index_past_65536_terms(tmp_path) -> None:
    """block_forward keeps term ids in 16 bits up to 65,536 terms and in 32 above: the wide layout, with terms on
    both sides of 65,536, against the reference (every other test's vocabulary is narrow)."""
    rng = np.random.default_rng(13)
    vocab = 70_000
    pool = np.r_[np.arange(65_500, 65_600), np.arange(69_900, 70_000), np.arange(0, 50)]
    rows = [
        {int(t): float(rng.uniform(0.1, 2.0)) for t in rng.choice(pool, size=int(rng.integers(1, 12)), replace=False)}
        for _ in range(1500)
    ]
    docs = SparseBatch.from_rows(rows)
    index = build(tmp_path, docs, vocab, batches=2)
    ref = ReferenceIndex(docs, vocab)
    queries = nonempty_queries(
        ref, SparseBatch.from_rows([{65_535: 1.0, 65_536: 0.5, 69_999: 2.0}, {3: 1.0, 65_550: 1.0}, {10: 0.3}])
    )
    check_against_reference(index, ref, queries, 10)
    check_against_reference(index, ref, queries, 1000)
