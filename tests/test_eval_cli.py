"""The lsr command end to end on a tiny BEIR folder (tiny model, no dense), TREC runs, metrics by hand."""

from __future__ import annotations

import gzip
import json
import math
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
from typer.testing import CliRunner  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_collection import model_dir, write_corpus  # noqa: E402,F401

from cli.app import app  # noqa: E402
from eval import metrics  # noqa: E402
from retrieval import trec  # noqa: E402


def test_metrics_by_hand() -> None:
    qrels = {"q1": {"a": 1, "b": 0, "c": 2}, "q2": {"x": 1}, "q3": {"y": 0}}
    run = {"q1": {"b": 3.0, "a": 2.0, "c": 1.0}, "q2": {}}
    got = metrics.per_query(run, qrels, ("nDCG@10", "RR@10", "R@100"))
    assert set(got["nDCG@10"]) == {"q1", "q2"}  # q3 has no relevant document: not judged
    dcg = 1 / math.log2(3) + 2 / math.log2(4)  # trec_eval's (and BEIR's) nDCG: the gain is the grade
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert got["nDCG@10"]["q1"] == pytest.approx(dcg / idcg)
    assert got["RR@10"]["q1"] == pytest.approx(0.5) and got["nDCG@10"]["q2"] == 0.0
    assert metrics.evaluate(run, qrels, ("R@100",))["R@100"] == pytest.approx(0.5)
    same = metrics.compare(run, run, qrels, ("nDCG@10",))[0]
    assert same.p_value == 1.0 and same.mean_a == same.mean_b
    assert metrics.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    with_self = {"q1": {"q1": 9.0, "b": 3.0, "a": 2.0, "c": 1.0}}  # BEIR's ignore_identical_ids drops the query
    got = metrics.per_query(with_self, qrels, ("nDCG@10",), ignore_identical_ids=True)["nDCG@10"]["q1"]
    assert got == pytest.approx(dcg / idcg)
    kept = metrics.per_query(with_self, qrels, ("nDCG@10",))["nDCG@10"]["q1"]  # off by default: "q1" is a document
    assert kept == pytest.approx((1 / math.log2(4) + 2 / math.log2(5)) / idcg)
    assert metrics.drops_identical_ids("../shared/data/arguana") and metrics.drops_identical_ids("cqadupstack-tex")
    assert not metrics.drops_identical_ids("../shared/data/scifact")


def test_trec_round_trip_and_errors(tmp_path: Path) -> None:
    run = {"q2": {"d1": 0.5, "d2": 1.5}, "q1": {"d9": 2.0}}
    trec.write_run(tmp_path / "r.trec", run, "tag")
    lines = (tmp_path / "r.trec").read_text().splitlines()
    assert lines[0] == "q1 Q0 d9 1 2.000000 tag" and lines[1].startswith("q2 Q0 d2 1 ")
    assert trec.read_run(tmp_path / "r.trec") == run
    (tmp_path / "bad.trec").write_text("q1 Q0 d1 1\n")
    with pytest.raises(ValueError, match="6 columns"):
        trec.read_run(tmp_path / "bad.trec")
    with pytest.raises(ValueError, match="one word"):
        trec.format_run(run, "two words")


def test_cli_index_search_eval(tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    data = tmp_path / "tinybeir"
    (data / "qrels").mkdir(parents=True)
    ids = write_corpus(data / "corpus.jsonl.gz", 60, bad=True)
    with gzip.open(data / "queries.jsonl.gz", "wt") as f:
        for i in range(5):
            f.write(json.dumps({"_id": f"q{i}", "text": f"w{i} w{i + 1}"}) + "\n")
    (data / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\t{ids[i * 3]}\t1\n" for i in range(5))
    )
    runner = CliRunner()
    col = tmp_path / "col"
    res = runner.invoke(
        app,
        [
            "index",
            str(data / "corpus.jsonl.gz"),
            "--out",
            str(col),
            "--model",
            str(model_dir),
            "--dense-model",
            "none",
            "--shard-size",
            "16",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "60 documents (3 malformed records skipped)" in res.output and "line 5: bad JSON" in res.output
    res = runner.invoke(app, ["search", str(col), "--query", "w1 w2", "--k", "3", "--format", "trec"])
    assert res.exit_code == 0, res.output
    assert len([line for line in res.output.splitlines() if " Q0 " in line]) == 3
    trec_top = next(line.split()[2] for line in res.output.splitlines() if " Q0 " in line)
    res = runner.invoke(app, ["search", str(col), "--query", "w1 w2", "--k", "3"])  # the default: a table
    assert res.exit_code == 0, res.output
    assert "rank" in res.output and trec_top in res.output and " Q0 " not in res.output
    res = runner.invoke(app, ["search", str(col), "--query", "w1", "--mode", "nope"])  # refused before loading
    assert res.exit_code == 2 and "--mode must be one of" in res.output
    monkeypatch.setenv("LSR_SEARCH_ALGORITHM", "exhaustive")  # restored after the test: --algorithm sets it
    res = runner.invoke(app, ["search", str(col), "--query", "w1 w2", "--k", "3", "--format", "trec",
                              "--algorithm", "block_forward"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert next(line.split()[2] for line in res.output.splitlines() if " Q0 " in line) == trec_top  # same hits
    assert os.environ["LSR_SEARCH_ALGORITHM"] == "block_forward"
    res = runner.invoke(app, ["search", str(col), "--query", "w1", "--algorithm", "wand"])
    assert res.exit_code == 2 and "--algorithm must be one of" in res.output
    res = runner.invoke(app, ["eval", "--data", str(data), "--collection", str(col), "--modes", "sparse,nope"])
    assert res.exit_code == 2 and "unknown modes ['nope']" in res.output
    res = runner.invoke(app, ["index", "no-such-corpus.jsonl", "--out", str(tmp_path / "m")])
    assert res.exit_code == 2 and "no such file" in res.output
    out = tmp_path / "eval"
    res = runner.invoke(
        app, ["eval", "--data", str(data), "--collection", str(col), "--modes", "sparse,exact", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    rows = {r["mode"]: r for r in report["rows"]}
    assert rows["sparse"]["nDCG@10"] == pytest.approx(rows["exact"]["nDCG@10"], abs=0.05)
    assert (out / "sparse.trec").exists()
    png = (out / "modes.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000  # the modes side by side, per query against sparse
    per_query = (out / "per_query.tsv").read_text().splitlines()
    assert per_query[0] == "mode\tmeasure\tquery\tvalue" and len(per_query) == 1 + 2 * 4 * 5
    res = runner.invoke(app, ["tune-fusion", "--data", str(data), "--collection", str(col), "--split", "test"])
    assert res.exit_code != 0 and "never on the test split" in res.output
    res = runner.invoke(
        app, ["compare", str(out / "sparse.trec"), str(out / "exact.trec"), "--qrels", str(data / "qrels" / "test.tsv")]
    )
    assert res.exit_code == 0 and "nDCG@10" in res.output


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path, model_dir: Path) -> None:  # noqa: F811
    runner = CliRunner()
    res = runner.invoke(app, ["search", str(tmp_path / "nowhere"), "--query", "w1"])
    assert res.exit_code == 2 and "error:" in res.output and "no such collection folder" in res.output
    res = runner.invoke(
        app,
        [
            "index",
            str(tmp_path / "missing.jsonl"),
            "--out",
            str(tmp_path / "c"),
            "--model",
            str(model_dir),
            "--dense-model",
            "none",
        ],
    )
    assert res.exit_code == 2 and "no such file" in res.output
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"_id": "a", "text": "w1"}\n{"_id": "a", "text": "w2"}\n')
    res = runner.invoke(
        app, ["index", str(dup), "--out", str(tmp_path / "d"), "--model", str(model_dir), "--dense-model", "none"]
    )
    assert res.exit_code == 2 and "duplicate document ids" in res.output
    assert not (tmp_path / "d" / "collection.json").exists()


def test_cli_search_filter(tmp_path: Path, model_dir: Path) -> None:  # noqa: F811
    """lsr search --filter: the corpus records' metadata; only matching documents come back; a bad filter is a
    usage error naming the bad part."""
    corpus = tmp_path / "c.jsonl"
    with open(corpus, "w") as f:
        for i in range(30):
            rec = {"_id": f"d{i}", "text": f"w1 w2 w{i}", "metadata": {"half": i % 2}}
            f.write(json.dumps(rec) + "\n")
    runner = CliRunner()
    col = tmp_path / "col"
    res = runner.invoke(
        app, ["index", str(corpus), "--out", str(col), "--model", str(model_dir), "--dense-model", "none"]
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        [
            "search",
            str(col),
            "--query",
            "w1 w2",
            "--k",
            "30",
            "--format",
            "trec",
            "--filter",
            '{"field": "half", "eq": 1}',
        ],
    )
    assert res.exit_code == 0, res.output
    docs = [line.split()[2] for line in res.output.splitlines() if " Q0 " in line]
    assert docs and all(int(d[1:]) % 2 == 1 for d in docs) and len(docs) == 15
    res = runner.invoke(app, ["search", str(col), "--query", "w1", "--filter", '{"field": "half", "gt": "x"}'])
    assert res.exit_code == 2 and "filter.gt" in res.output


def test_cli_search_query_term_pruning(tmp_path: Path, model_dir: Path) -> None:  # noqa: F811
    """lsr search --max-terms / --mass: the run equals searching the pruned query vectors (Searcher, same index)."""
    import numpy as np

    from indexer import SparseBatch
    from indexer.csr import prune_terms
    from lsr import SparseEncoder
    from retrieval.searcher import Collection, search_vectors

    corpus = tmp_path / "c.jsonl"
    rng = np.random.default_rng(3)
    with open(corpus, "w") as f:
        for i in range(40):
            f.write(json.dumps({"_id": f"d{i}", "text": " ".join(f"w{j}" for j in rng.integers(0, 30, 8))}) + "\n")
    runner = CliRunner()
    col = tmp_path / "col"
    res = runner.invoke(
        app, ["index", str(corpus), "--out", str(col), "--model", str(model_dir), "--dense-model", "none"]
    )
    assert res.exit_code == 0, res.output
    text = "w1 w2 w3 w4 w5 w6 w7"
    enc = SparseEncoder.from_pretrained(model_dir)
    q = enc.encode_queries([text])
    for args, (m, f) in [(["--max-terms", "2"], (2, None)), (["--mass", "0.5"], (None, 0.5))]:
        res = runner.invoke(app, ["search", str(col), "--query", text, "--k", "10", "--format", "trec", *args])
        assert res.exit_code == 0, res.output
        got = [line.split()[2] for line in res.output.splitlines() if " Q0 " in line]
        idx, val = prune_terms(*q.row(0), m, f)
        assert len(idx) < q.nnz
        pruned = SparseBatch(np.array([0, len(idx)], np.uint64), idx, val)
        (want,) = search_vectors(Collection.open(col), "sparse", 10, sparse=pruned)
        assert got == [d for d, _ in want.hits]


def test_hybrid_fusion_is_the_collections_tuned_one_else_dbsf(tmp_path: Path) -> None:
    """lsr search / eval: options given > --fusion-file > COLLECTION/fusion.json (tune-fusion's) > DBSF 1:1."""
    from cli.app import FUSION_FILE, _fusion
    from retrieval.fusion import Fusion

    assert _fusion(tmp_path, None) == Fusion("dbsf", (1.0, 1.0), 60.0, "minmax")
    tuned = {"fusion": {"method": "linear", "weights": [1.0, 0.4], "rrf_k": 60.0, "norm": "zscore"}}
    (tmp_path / FUSION_FILE).write_text(json.dumps(tuned))
    assert _fusion(tmp_path, None) == Fusion("linear", (1.0, 0.4), 60.0, "zscore")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"fusion": {"method": "rrf", "weights": [1, 1], "rrf_k": 10.0, "norm": "minmax"}}))
    assert _fusion(tmp_path, other).rrf_k == 10.0
    assert _fusion(tmp_path, other, method="rrf", weights="1,2") == Fusion("rrf", (1.0, 2.0), 60.0, "minmax")


def test_cli_index_refuses_inputs_that_would_index_nothing(tmp_path: Path, model_dir: Path, caplog) -> None:  # noqa: ANN001, F811
    """A wrong --id-field, a wrong --text-field or an empty file: one clear error naming the option, exit 2, and
    nothing encoded; some empty texts are counted and reported."""
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"doc": f"d{i}", "body": f"w{i} w2"}) + "\n" for i in range(12)))
    runner = CliRunner()

    def index(*extra: str) -> tuple[int, str]:
        out = tmp_path / f"col{len(list(tmp_path.iterdir()))}"
        args = ["index", str(corpus), "--out", str(out), "--model", str(model_dir), "--dense-model", "none", *extra]
        res = runner.invoke(app, args)
        return res.exit_code, res.output

    code, out = index()  # default id field _id
    assert code == 2 and "--id-field" in out and "no record could be read" in out
    code, out = index("--id-field", "doc")  # default text fields title, text
    assert code == 2 and "--text-field" in out and "all 12 records have an empty text" in out
    with caplog.at_level("INFO", logger="cli.app"):
        code, out = index("--id-field", "doc", "--text-field", "body")
    assert code == 0 and "12 documents" in out, out
    assert "encoding: 12 / 12 docs" in caplog.text  # not a terminal: progress as log lines, not a bar
    (tmp_path / "empty.jsonl").write_text("")
    res = runner.invoke(app, ["index", str(tmp_path / "empty.jsonl"), "--out", str(tmp_path / "e"), "--model",
                              str(model_dir), "--dense-model", "none"])  # fmt: skip
    assert res.exit_code == 2 and "no record could be read" in res.output
    with open(corpus, "a") as f:
        f.write(json.dumps({"doc": "blank", "body": "  "}) + "\n")
    code, out = index("--id-field", "doc", "--text-field", "body")
    assert code == 0 and "13 documents (0 malformed records skipped, 1 with an empty text)" in out, out


def test_cli_index_static_pruning(tmp_path: Path, model_dir: Path) -> None:  # noqa: F811
    """lsr index --doc-max-terms: the sparse index keeps each document's heaviest terms and says so in its
    manifest; the shards keep the whole vectors (the exact mode's twin); bad values stop before any model loads."""
    from indexer import Index

    corpus = tmp_path / "c.jsonl"
    with open(corpus, "w") as f:
        for i in range(20):
            f.write(json.dumps({"_id": f"d{i}", "text": " ".join(f"w{j}" for j in range(i % 7 + 3))}) + "\n")
    runner = CliRunner()
    base = ["--model", str(model_dir), "--dense-model", "none"]
    res = runner.invoke(app, ["index", str(corpus), "--out", str(tmp_path / "full"), *base])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["index", str(corpus), "--out", str(tmp_path / "pruned"), "--doc-max-terms", "2", *base])
    assert res.exit_code == 0, res.output
    full, pruned = Index.open(tmp_path / "full" / "sparse"), Index.open(tmp_path / "pruned" / "sparse")
    assert pruned.manifest.static_pruning == {"max_terms": 2, "mass": None}
    assert full.manifest.static_pruning is None
    assert pruned.num_postings <= 2 * pruned.num_docs < full.num_postings
    for bad in (["--doc-max-terms", "0"], ["--doc-mass", "1.5"]):
        res = runner.invoke(app, ["index", str(corpus), "--out", str(tmp_path / "bad"), *bad, *base])
        assert res.exit_code == 2 and "doc-" in res.output, res.output
