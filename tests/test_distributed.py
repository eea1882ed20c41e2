"""Corpus encoding on Ray (retrieval.distributed) against the single-machine job, on a local Ray instance that the
test starts (two CPU workers), with a tiny BERT model saved to disk and real corpus files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
ray = pytest.importorskip("ray")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from tiny_models import WORDS, save_tiny_bert_encoder  # noqa: E402

from retrieval.collection import COLLECTION, Job, build, read_shard, scan, shard_docs, shard_path  # noqa: E402
from retrieval.corpus import read_docs  # noqa: E402
from retrieval.distributed import build_on_ray  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bert_encoder(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def local_ray():  # noqa: ANN201
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def write_corpus(path: Path, n: int, seed: int = 0, bad_at: tuple[int, ...] = ()) -> None:
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        if i in bad_at:
            lines.append('{"_id": "broken", "text": ')
        meta = {"year": int(rng.integers(2000, 2020))} if i % 3 == 0 else None
        rec = {"_id": f"doc{i}", "title": "", "text": " ".join(rng.choice(WORDS, int(rng.integers(1, 12))))}
        if meta:
            rec["metadata"] = meta
        lines.append(json.dumps(rec))
        if i % 7 == 0:
            lines.append("")  # blank lines are not records
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def job_for(corpus: Path, model_dir: Path, shard_size: int) -> Job:
    return Job(str(corpus), None, "_id", ("title", "text"), str(model_dir), None, shard_size)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 60), shard_size=st.integers(1, 20), gz=st.booleans(), bad=st.sets(st.integers(0, 59)))
def test_each_shard_read_alone_equals_the_stream(tmp_path_factory, n: int, shard_size: int, gz: bool, bad) -> None:  # noqa: ANN001
    """A worker reads its shard from the scan's start (a seek in a plain file, skipped lines in a gzip file): the
    same records as the k-th batch of the whole stream, malformed ones skipped."""
    folder = tmp_path_factory.mktemp("c")
    corpus = folder / ("c.jsonl.gz" if gz else "c.jsonl")
    write_corpus(corpus, n, bad_at=tuple(bad))
    job = job_for(corpus, Path("unused"), shard_size)
    sc = scan(job)
    docs = list(read_docs(corpus, report=None))
    assert sc.records == len(docs) == n and len(sc.starts) == -(-n // shard_size)
    for k, start in enumerate(sc.starts):
        want = docs[k * shard_size : (k + 1) * shard_size]
        assert shard_docs(job, start, len(want)) == want


def test_ray_build_equals_the_single_machine_build_and_resumes(tmp_path: Path, model_dir: Path, local_ray) -> None:  # noqa: ANN001
    from indexer import Index
    from lsr import SparseEncoder

    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus, 75, seed=3, bad_at=(4, 40))
    job = job_for(corpus, model_dir, 16)
    one = build(tmp_path / "one", job, SparseEncoder.from_pretrained(model_dir))
    got = build_on_ray(tmp_path / "ray", job, address=None, workers=2)
    assert (got.records, got.skipped, got.shards_encoded) == (75, 2, 5)
    assert got.problems == one.problems and [p[0] for p in got.problems] == [6, 48]  # file lines, blank ones counted
    for k in range(5):  # the same shards: ids, vectors, metadata
        a, b = read_shard(shard_path(tmp_path / "one", k)), read_shard(shard_path(tmp_path / "ray", k))
        assert a[0] == b[0]
        for x, y in zip((a[1].indptr, a[1].indices, a[1].values), (b[1].indptr, b[1].indices, b[1].values)):
            np.testing.assert_array_equal(x, y)
    x, y = Index.open(tmp_path / "one" / "sparse"), Index.open(tmp_path / "ray" / "sparse")
    assert [x.lexicon[i] for i in range(75)] == [y.lexicon[i] for i in range(75)]
    for term in np.flatnonzero(y.term_df()):
        for u, v in zip(x.postings(int(term)), y.postings(int(term))):
            np.testing.assert_array_equal(u, v)
    meta_one = json.loads((tmp_path / "one" / COLLECTION).read_text())
    meta_ray = json.loads((tmp_path / "ray" / COLLECTION).read_text())
    assert {k: meta_one[k] for k in ("num_docs", "shards", "vocab_hash")} == {
        k: meta_ray[k] for k in ("num_docs", "shards", "vocab_hash")
    }

    # resumable: a run stopped after some shards goes on with the missing ones only
    (tmp_path / "ray" / COLLECTION).unlink()
    shard_path(tmp_path / "ray", 1).unlink()
    shard_path(tmp_path / "ray", 3).unlink()
    again = build_on_ray(tmp_path / "ray", job, address=None, workers=2)
    assert again.shards_encoded == 2 and (tmp_path / "ray" / COLLECTION).exists()
    assert read_shard(shard_path(tmp_path / "ray", 3))[0] == read_shard(shard_path(tmp_path / "one", 3))[0]
    done = build_on_ray(tmp_path / "ray", job, address=None, workers=2)  # complete: nothing to do
    assert done.shards_encoded == 0 and done.records == 75

    with pytest.raises(ValueError, match="other settings"):
        build_on_ray(tmp_path / "ray", job_for(corpus, model_dir, 8), address=None)
    with pytest.raises(ValueError, match="workers"):
        build_on_ray(tmp_path / "x", job, address=None, workers=0)
    with pytest.raises(FileNotFoundError):
        build_on_ray(tmp_path / "x", job_for(tmp_path / "missing.jsonl", model_dir, 8), address=None)


def test_cli_index_on_ray(tmp_path: Path, model_dir: Path, local_ray) -> None:  # noqa: ANN001
    from typer.testing import CliRunner

    from cli.app import app

    corpus = tmp_path / "c.jsonl.gz"
    write_corpus(corpus, 30, seed=9, bad_at=(2,))
    runner = CliRunner()
    args = ["index", str(corpus), "--out", str(tmp_path / "col"), "--model", str(model_dir), "--dense-model", "none",
            "--shard-size", "8"]  # fmt: skip
    res = runner.invoke(app, [*args, "--ray", "local", "--ray-workers", "2"])
    assert res.exit_code == 0, res.output
    assert "30 documents (1 malformed records skipped), 4 shards encoded" in res.output
    assert (tmp_path / "col" / COLLECTION).exists()
    res = runner.invoke(app, [*args, "--ray", "local", "--num-shards", "2"])
    assert res.exit_code != 0 and "--num-shards" in res.output
    res = runner.invoke(app, [*args, "--ray", "local", "--ray-workers", "0"])
    assert res.exit_code != 0 and "--ray-workers" in res.output
