"""Query term pruning (indexer.prune_terms) against a plain-Python twin, and its effect on search: a pruned
query's hits are exactly the full search of the pruned vector."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import corpora, random_batch
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer import Index, SparseBatch
from indexer.csr import prune_terms


def reference(terms: list[int], weights: list[float], max_terms: int | None, mass: float | None) -> list[int]:
    """The kept term ids, in input order: heaviest first (lower id on ties), then cut by count and by mass."""
    ranked = sorted(zip(terms, weights), key=lambda tw: (-tw[1], tw[0]))
    if max_terms is not None:
        ranked = ranked[:max_terms]
    if mass is not None:
        total = sum(float(w) for w in weights)
        if total > 0:
            acc, cut = 0.0, []
            for t, w in ranked:
                cut.append((t, w))
                acc += float(w)
                if acc >= mass * total * (1 - 1e-12):
                    break
            ranked = cut
    kept = {t for t, _ in ranked}
    return [t for t in terms if t in kept]


vectors = st.lists(st.tuples(st.integers(0, 200), st.sampled_from([0.25, 0.5, 1.0, 1.5, 2.0, 3.0])), max_size=30)


@settings(max_examples=300, deadline=None)
@given(vectors, st.one_of(st.none(), st.integers(1, 35)), st.one_of(st.none(), st.floats(0.01, 1.0)))
def test_prune_terms_equals_the_reference(pairs, max_terms, mass) -> None:  # noqa: ANN001
    pairs = list(dict(pairs).items())  # one weight per term, as a sparse vector has
    idx = np.array([t for t, _ in pairs], np.uint32)
    val = np.array([w for _, w in pairs], np.float32)
    got_idx, got_val = prune_terms(idx, val, max_terms, mass)
    want = reference([t for t, _ in pairs], [w for _, w in pairs], max_terms, mass)
    assert got_idx.tolist() == want
    assert got_val.tolist() == [dict(pairs)[t] for t in want]
    if len(pairs):
        assert len(got_idx) >= 1


def test_batch_pruning_and_bad_limits() -> None:
    batch = SparseBatch.from_rows([{1: 0.5, 2: 2.0, 3: 1.0}, {}, {7: 1.0}])
    pruned = batch.pruned(max_terms=2)
    assert [pruned.row(i)[0].tolist() for i in range(3)] == [[2, 3], [], [7]]
    assert batch.pruned() is batch
    assert batch.pruned(mass=0.5).row(0)[0].tolist() == [2]  # 2.0 of 3.5 is past half
    with pytest.raises(ValueError, match="max_terms"):
        batch.pruned(max_terms=0)
    with pytest.raises(ValueError, match="mass"):
        batch.pruned(mass=1.5)


@given(corpora(max_docs=200, max_vocab=50), st.sampled_from([None, 1, 3, 8]), st.sampled_from([None, 0.3, 0.8, 1.0]))
def test_static_pruning_builds_the_index_of_the_pruned_documents(tmp_path_factory, params, max_terms, mass) -> None:
    """An index built with doc_max_terms / doc_mass (in memory or in passes) equals the index built from the
    documents pruned beforehand (prune_terms on each row), and its manifest says how it was pruned."""
    from indexer import IndexBuilder, build_index
    from indexer.csr import prune_rows

    rng, nrows, vocab, nnz = params
    docs = random_batch(rng, nrows, vocab, nnz)
    tmp = tmp_path_factory.mktemp("static")
    ids = [f"d{i}" for i in range(nrows)]
    pruned = prune_rows(docs, max_terms, mass)
    for r in range(nrows):
        want = prune_terms(*docs.row(r), max_terms, mass)
        np.testing.assert_array_equal(pruned.row(r)[0], want[0])
        np.testing.assert_array_equal(pruned.row(r)[1], want[1])
    with IndexBuilder(tmp / "twin", vocab_size=vocab) as b:
        b.add(ids, pruned)
    with IndexBuilder(tmp / "mem", vocab_size=vocab, doc_max_terms=max_terms, doc_mass=mass) as b:
        b.add(ids, docs)
    build_index(tmp / "passes", lambda: iter([(ids, docs)]), vocab_size=vocab, doc_max_terms=max_terms,
                doc_mass=mass, max_postings=7)  # fmt: skip
    twin = Index.open(tmp / "twin")
    for name in ("mem", "passes"):
        got = Index.open(tmp / name)
        assert got.num_postings == twin.num_postings
        for t in range(vocab):
            for a, b_ in zip(got.postings(t), twin.postings(t)):
                np.testing.assert_array_equal(a, b_)
        expect = None if max_terms is None and mass is None else {"max_terms": max_terms, "mass": mass}
        assert got.manifest.static_pruning == expect
    if max_terms is not None:
        assert (np.diff(pruned.indptr.astype(np.int64)) <= max_terms).all()
    with pytest.raises(ValueError, match="doc_max_terms"):
        IndexBuilder(tmp / "bad", vocab_size=vocab, doc_max_terms=0)
    with pytest.raises(ValueError, match="doc_mass"):
        IndexBuilder(tmp / "bad", vocab_size=vocab, doc_mass=1.5)
