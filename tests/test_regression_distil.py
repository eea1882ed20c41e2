"""Regression for the model trained here: splade-tiny-distil (lsr/weights) on BEIR scifact test reproduces the
scores kept in eval/expected/scifact-splade-tiny-distil.json, stays inside its sparsity budget, beats BM25 and the
downloaded SPLADE-tiny (eval/expected/scifact.json), and loads in sentence-transformers with the same vectors.
Its inference-free queries (splade-tiny-distil-if, over the same document vectors) reproduce theirs.

Builds a sparse-only collection from scratch (about a minute on 2 CPU cores)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "scifact"
EXPECTED = json.loads((ROOT / "eval" / "expected" / "scifact-splade-tiny-distil.json").read_text())
BASELINES = json.loads((ROOT / "eval" / "expected" / "scifact.json").read_text())["scores"]


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    if not (DATA / "corpus.jsonl.gz").exists() and not (DATA / "corpus.jsonl").exists():
        pytest.skip(f"no scifact corpus in {DATA}")
    from lsr import SparseEncoder
    from retrieval.collection import Job, build
    from retrieval.corpus import find
    from retrieval.searcher import Collection

    sparse = SparseEncoder.from_pretrained(EXPECTED["sparse_model"])
    folder = tmp_path_factory.mktemp("scifact-distil") / "collection"
    job = Job(str(find(DATA, "corpus")), None, "_id", ("title", "text"), EXPECTED["sparse_model"], None, 10_000)
    build(folder, job, sparse)
    return Collection.open(folder), sparse


@pytest.fixture(scope="module")
def report(collection) -> dict:  # noqa: ANN001
    from eval.experiment import run_experiment
    from retrieval.searcher import Searcher

    col, sparse = collection
    return run_experiment(DATA, col, Searcher(col, sparse), ["sparse", "exact"], k=EXPECTED["k"])


def test_expected_scores_and_budget(report: dict) -> None:
    got = {r["mode"]: r for r in report["rows"]}
    for mode, want in EXPECTED["scores"].items():
        for measure, value in want.items():
            assert got[mode][measure] == pytest.approx(value, abs=EXPECTED["tolerance"]), (mode, measure)
    assert got["sparse"]["query_nnz"] <= 64 and report["doc_nnz"] <= 256
    assert got["sparse"]["query_nnz"] == pytest.approx(EXPECTED["query_nnz"], abs=0.5)
    assert report["doc_nnz"] == pytest.approx(EXPECTED["doc_nnz"], abs=0.5)


def test_beats_bm25_and_the_downloaded_splade_tiny(report: dict) -> None:
    got = {r["mode"]: r for r in report["rows"]}["sparse"]
    assert got["nDCG@10"] > BASELINES["bm25"]["nDCG@10"]
    assert got["nDCG@10"] > BASELINES["sparse"]["nDCG@10"]
    assert got["R@100"] >= BASELINES["sparse"]["R@100"]


def test_sentence_transformers_loads_the_shipped_folder_with_the_same_vectors() -> None:
    from st_twin import largest_gap

    from lsr import SparseEncoder
    from lsr.models import resolve

    texts = ["Aspirin lowers the risk of colorectal cancer.", "0-dimensional biomaterials lack inductive properties."]
    ours = SparseEncoder.from_pretrained(EXPECTED["sparse_model"])
    gap, nnz = largest_gap(ours, resolve(EXPECTED["sparse_model"]).path, texts)
    assert nnz > 0 and gap < 1e-4


def test_inference_free_queries_reproduce_their_scores(collection) -> None:  # noqa: ANN001
    from eval.experiment import run_experiment
    from lsr import SparseEncoder
    from lsr.inference_free import InferenceFreeEncoder
    from retrieval.searcher import Searcher

    want = json.loads((ROOT / "eval" / "expected" / "scifact-splade-tiny-distil-if.json").read_text())
    col, sparse = collection
    enc = SparseEncoder.from_pretrained(want["sparse_model"])
    assert isinstance(enc, InferenceFreeEncoder) and enc.vocab_hash == sparse.vocab_hash
    got = {r["mode"]: r for r in run_experiment(DATA, col, Searcher(col, enc), ["sparse"], k=want["k"])["rows"]}
    for measure, value in want["scores"]["sparse"].items():
        assert got["sparse"][measure] == pytest.approx(value, abs=want["tolerance"]), measure
    assert got["sparse"]["query_nnz"] == pytest.approx(want["query_nnz"], abs=0.5)
