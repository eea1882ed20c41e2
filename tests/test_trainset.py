"""The training-set builder: the round-trip filter against a naive twin, the prompt helpers, and the whole
builder on a small real corpus with the real teachers and the real SmolLM2 generator."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lsr.train import data
from lsr.train.pseudo_queries import clean, dedupe, prompt
from retrieval.fusion import top_k
from retrieval.trainset import TrainsetSettings, build_trainset, roundtrip_keep

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"


def naive_roundtrip(run: dict, sources: dict, k: int) -> dict:
    return {q: src in top_k(run.get(q, {}), k) for q, src in sources.items()}


@given(
    st.dictionaries(
        st.sampled_from([f"q{i}" for i in range(6)]),
        st.dictionaries(st.sampled_from([f"d{i}" for i in range(12)]), st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.5])),
    ),
    st.integers(1, 12),
    st.data(),
)
def test_roundtrip_filter_matches_naive_twin(run: dict, k: int, draw: st.DataObject) -> None:
    sources = {q: draw.draw(st.sampled_from([f"d{i}" for i in range(13)])) for q in [*run, "q-unseen"]}
    assert roundtrip_keep(run, sources, k) == naive_roundtrip(run, sources, k)


def test_prompt_and_cleaning_by_hand() -> None:
    p = prompt([("Aspirin thins blood.", "does aspirin thin blood")], "Coffee   and sleep.", 100)
    assert p == "Passage: Aspirin thins blood.\nQuery: does aspirin thin blood\n\nPassage: Coffee and sleep.\nQuery:"
    assert prompt([], "one two three four", 9).endswith("Passage: one two\nQuery:")  # cut at a word boundary
    assert clean(' "Query: coffee harms sleep quality"\nPassage: next') == "coffee harms sleep quality"
    assert clean("too short") is None and clean("Passage: copies the passage text") is None
    assert dedupe(["Coffee harms sleep.", "coffee harms sleep", "Tea helps"]) == ["Coffee harms sleep.", "Tea helps"]


def _small_beir(folder: Path, docs: int = 40) -> tuple[Path, Path, Path]:
    """The first scifact train queries with their positives, plus other documents, as a small BEIR folder."""
    with gzip.open(SCIFACT / "queries.jsonl.gz", "rt") as f:
        queries = {r["_id"]: r for r in map(json.loads, f)}
    rows = [x.split("\t") for x in (SCIFACT / "qrels" / "train.tsv").read_text().splitlines()[1:]]
    with gzip.open(SCIFACT / "corpus.jsonl.gz", "rt") as f:
        corpus = {r["_id"]: r for r in map(json.loads, f)}
    qrels = [(q, d) for q, d, _ in rows[:12] if d in corpus]
    keep = list(dict.fromkeys([d for _, d in qrels] + list(corpus)[:docs]))[:docs]
    qrels = [(q, d) for q, d in qrels if d in keep]
    folder.mkdir(parents=True)
    (folder / "qrels").mkdir()
    with gzip.open(folder / "corpus.jsonl.gz", "wt") as f:
        for d in keep:
            f.write(json.dumps(corpus[d]) + "\n")
    with gzip.open(folder / "queries.jsonl.gz", "wt") as f:
        for q in dict.fromkeys(q for q, _ in qrels):
            f.write(json.dumps(queries[q]) + "\n")
    (folder / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in qrels)
    )
    return folder / "corpus.jsonl.gz", folder / "queries.jsonl.gz", folder / "qrels" / "train.tsv"


@pytest.mark.skipif(not SCIFACT.is_dir(), reason="needs ../shared/data/scifact")
def test_builder_on_a_small_real_corpus(tmp_path: Path) -> None:
    corpus, queries, qrels = _small_beir(tmp_path / "beir")
    s = TrainsetSettings(
        pseudo_passages=3, per_passage=2, candidates=5, mine_depth=20, dev_fraction=0.25, roundtrip_k=40
    )
    folder = build_trainset(tmp_path / "out", corpus, queries, qrels, s)
    ts = data.TrainSet.load(folder)
    m = ts.manifest
    assert m["counts"]["pseudo_passages"] == 3 and m["counts"]["pseudo_generated"] >= 1
    # a round-trip depth past the corpus keeps every generated query
    assert m["counts"]["pseudo_kept"] == m["counts"]["pseudo_generated"]
    reach = m["counts"]["pseudo_source_rank"]  # nested: top1 <= top3 <= top10 <= everything retrieved
    assert reach["top1"] <= reach["top3"] <= reach["top10"] <= m["counts"]["pseudo_generated"]
    assert m["counts"]["dev_queries_held_out"] >= 1
    dev_qids = {x.split("\t")[0] for x in (tmp_path / "out" / "dev" / "qrels" / "dev.tsv").read_text().splitlines()[1:]}
    assert dev_qids and not dev_qids & {r["qid"] for r in ts.rows}  # held-out queries are never trained on
    for r in ts.rows:
        n_pos = sum(r["label"])
        assert n_pos >= 1 and r["label"][:n_pos] == [1] * n_pos and len(r["doc_ids"]) == n_pos + 5
        assert len(set(r["doc_ids"])) == len(r["doc_ids"])  # negatives exclude the positives
        assert all(len(r[t]) == len(r["doc_ids"]) for t in ("bm25", "splade", "dense"))
        # the sparse teacher's score is the dot product of float vectors: positive for documents it retrieved
        assert max(r["splade"]) > 0 and max(r["dense"]) <= 1.0 + 1e-5
    assert {r["source"] for r in ts.rows} == {"train", "pseudo"}
    # a rerun resumes: the generated parts are kept, nothing is generated again
    part = tmp_path / "out" / "pseudo" / "part-00000.parquet"
    before = part.stat().st_mtime_ns
    build_trainset(tmp_path / "out", corpus, queries, qrels, s)
    assert part.stat().st_mtime_ns == before
    with pytest.raises(ValueError, match="test split"):
        build_trainset(tmp_path / "x", corpus, queries, SCIFACT / "qrels" / "test.tsv", s)
    # another set over the same corpus reuses the teachers' indexes: the same training rows, no corpus re-encoded
    from dataclasses import replace

    reuse = replace(s, pseudo_passages=0, teachers_from=str(tmp_path / "out"))
    again = build_trainset(tmp_path / "again", corpus, queries, qrels, reuse)
    fresh = build_trainset(tmp_path / "fresh", corpus, queries, qrels, replace(reuse, teachers_from=None))
    assert data.TrainSet.load(again).rows == data.TrainSet.load(fresh).rows
    for f in (tmp_path / "out" / "collection").rglob("*"):  # copied as they were, not encoded again
        if f.is_file():
            g = tmp_path / "again" / "collection" / f.relative_to(tmp_path / "out" / "collection")
            assert g.read_bytes() == f.read_bytes() and g.stat().st_mtime_ns == f.stat().st_mtime_ns, g
    with pytest.raises(ValueError, match="teachers are"):
        build_trainset(tmp_path / "b", corpus, queries, qrels, replace(reuse, dense_model="other"))
    with pytest.raises(FileNotFoundError, match="no teachers"):
        build_trainset(tmp_path / "c", corpus, queries, qrels, replace(reuse, teachers_from=str(tmp_path / "no")))


def test_model_teacher_scores_every_pair_as_its_encoder_does(tmp_path: Path) -> None:
    """lsr teacher (add_model_teacher): a trained encoder's dot product for every (query, document) pair, equal to
    encoding each pair alone; the same from a vector file of the documents; bad vector files refused clearly."""
    import numpy as np
    from tiny_models import WORDS, save_tiny_bert_encoder

    from indexer import SparseBatch
    from lsr import SparseEncoder
    from retrieval.trainset import add_model_teacher
    from retrieval.vectors import write_vectors

    rng = np.random.default_rng(0)
    docs = {f"d{i}": " ".join(rng.choice(WORDS, 6)) for i in range(9)}
    rows = [
        {"qid": f"q{j}", "query": " ".join(rng.choice(WORDS, 3)), "source": "train",
         "doc_ids": [f"d{(j + k) % 9}" for k in range(4)], "label": [1, 0, 0, 0],
         "bm25": [1.0, 0.5, 0.2, 0.1], "splade": None, "dense": [0.9, 0.4, 0.3, 0.2]}
        for j in range(5)
    ]  # fmt: skip
    src = data.write(tmp_path / "set", rows, docs, {"teachers": {"bm25": "bm25s"}})
    model = save_tiny_bert_encoder(tmp_path / "model")
    out = add_model_teacher(src, tmp_path / "with-model", str(model))
    enc = SparseEncoder.from_pretrained(model)

    def dense(text: str, side: str) -> np.ndarray:  # the slow twin: one text, a dense vector
        b = enc.encode([text], side=side).sparse
        v = np.zeros(enc.vocab_size)
        v[b.indices] = b.values
        return v

    ts = data.TrainSet.load(out)
    assert ts.manifest["teachers"]["model"]["name"] == str(model) and ts.manifest["teachers"]["bm25"] == "bm25s"
    for r, orig in zip(ts.rows, rows):
        want = [dense(r["query"], "query") @ dense(docs[d], "document") for d in r["doc_ids"]]
        assert r["model"] == pytest.approx(want, rel=1e-5, abs=1e-6)
        assert r["bm25"] == pytest.approx(orig["bm25"]) and r["splade"] is None
    assert any(max(r["model"]) > 0 for r in ts.rows)  # not all zeros (a random tiny model matches some pairs)
    batch = next(iter(ts.batches(0, 0, 0, 2, 4, 30)))[1]  # the trainer sees it as a teacher like the others
    assert batch.teachers["model"].shape == (2, 4)

    ids = sorted(docs)
    enc_docs = enc.encode([docs[d] for d in ids], side="document").sparse
    write_vectors(tmp_path / "v.safetensors", enc_docs, None, ids)
    again = add_model_teacher(src, tmp_path / "from-vectors", str(model), doc_vectors=tmp_path / "v.safetensors")
    for a, b in zip(data.TrainSet.load(again).rows, ts.rows):
        assert a["model"] == pytest.approx(b["model"], rel=1e-5)

    write_vectors(tmp_path / "few.safetensors", enc_docs, None, [f"x{i}" for i in range(len(ids))])
    with pytest.raises(ValueError, match=r"lacks 8 of the set's documents, e.g. 'd0'"):
        add_model_teacher(src, tmp_path / "a", str(model), doc_vectors=tmp_path / "few.safetensors")
    write_vectors(tmp_path / "noids.safetensors", enc_docs)
    with pytest.raises(ValueError, match="stores no document ids"):
        add_model_teacher(src, tmp_path / "b", str(model), doc_vectors=tmp_path / "noids.safetensors")
    wide = SparseBatch(np.array([0, 1], np.uint64), np.array([enc.vocab_size], np.uint32), np.ones(1, np.float32))
    write_vectors(tmp_path / "wide.safetensors", wide, None, ["d0"])
    with pytest.raises(ValueError, match=r"row 0 has term id \d+ >= vocab_size"):
        add_model_teacher(src, tmp_path / "c", str(model), doc_vectors=tmp_path / "wide.safetensors")
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()  # nothing half-written
