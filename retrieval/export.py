"""Exports of a collection (``lsr index``) for teams that already run a search engine: its documents with their
sparse vectors (terms named by token) and, where the format has a place for it, the dense vector and the text.

- ``pyserini``: Anserini's ``JsonVectorCollection`` (``{"id", "contents", "vector": {token: impact}}`` JSONL), the
  impacts being the same 8-bit integers as our index (its ``impact_scale``), so that ``IndexCollection -impact
  -pretokenized`` and ``SimpleImpactSearcher`` rank as our index does.
- ``qdrant``: ``points.jsonl`` (one point per line: an integer id, ``vector: {"sparse": {"indices", "values"}}``
  plus ``"dense"`` when the collection has dense vectors, ``payload: {"doc_id", "text"}``) and
  ``collection.json`` (the ``sparse_vectors`` / ``vectors`` config to create the collection with).
- ``elasticsearch`` (also OpenSearch): ``bulk.ndjson`` for the ``_bulk`` API (an ``index`` action, then
  ``{"doc_id", "text", "sparse": {token: weight}}``) and ``mapping.json`` (``rank_features``; ES 8's
  ``sparse_vector`` takes the same documents). Field names cannot hold dots there, so a token's ``%`` and ``.``
  are written ``%25`` and ``%2E`` (``escape_token`` / ``unescape_token``; query tokens need the same).

Each writes its files atomically in ``out`` (a folder) and returns what it wrote.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.atomic import write_file
from indexer.manifest import Manifest
from indexer.reference import quantize

from .collection import COLLECTION, SPARSE, iter_shards
from .corpus import read_docs

logger = logging.getLogger(__name__)

FORMATS = ("pyserini", "qdrant", "elasticsearch")


@dataclass
class ExportStats:
    format: str
    documents: int
    files: list[str]


def escape_token(token: str) -> str:
    """A token as an Elasticsearch / OpenSearch field name: ``%`` -> ``%25``, ``.`` -> ``%2E``."""
    return token.replace("%", "%25").replace(".", "%2E")


def unescape_token(name: str) -> str:
    return name.replace("%2E", ".").replace("%25", "%")


Row = tuple[str, np.ndarray, np.ndarray, "np.ndarray | None", "str | None"]  # id, terms, weights, dense, text


def _documents(collection: Path, with_text: bool) -> tuple[dict, Iterator[Row]]:
    meta = json.loads((collection / COLLECTION).read_text())
    job = meta["job"]
    texts: dict[str, str] = {}
    if with_text:
        for d in read_docs(Path(job["input"]), fmt=job["fmt"], id_field=job["id_field"],
                           text_fields=tuple(job["text_fields"])):  # fmt: skip
            texts[d.id] = d.text

    def rows() -> Iterator[Row]:
        for ids, sparse, dense in iter_shards(collection, meta["shards"], dense=job["dense_model"] is not None):
            for r, doc_id in enumerate(ids):
                terms, weights = sparse.row(r)
                yield doc_id, terms, weights, None if dense is None else dense[r], texts.get(doc_id)

    return meta, rows()


def _write_lines(path: Path, lines: Iterator[str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(lines)


def export_collection(collection: str | Path, out: str | Path, fmt: str, *, with_text: bool = True,
                      index_name: str = "lsr") -> ExportStats:  # fmt: skip
    """Write ``collection`` in ``fmt`` (one of ``FORMATS``) into the folder ``out``."""
    from lsr.vocab import tokens

    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {fmt!r}")
    collection, out = Path(collection), Path(out)
    if not (collection / COLLECTION).is_file():
        raise FileNotFoundError(f"{collection}: no {COLLECTION}; not a complete collection")
    meta, rows = _documents(collection, with_text)
    job = meta["job"]
    vocab = tokens(job["sparse_model"], meta["vocab_size"], meta["vocab_hash"])
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    if fmt == "pyserini":
        scale = Manifest.read(collection / SPARSE).impact_scale

        def lines() -> Iterator[str]:
            nonlocal n
            for doc_id, terms, weights, _, text in rows:
                impacts = quantize(weights, scale) if len(weights) else np.zeros(0, np.int64)
                vec = {vocab[t]: int(i) for t, i in zip(terms.tolist(), impacts.tolist())}
                n += 1
                yield json.dumps({"id": doc_id, "contents": text or "", "vector": vec}, ensure_ascii=False) + "\n"

        files = {"docs.jsonl": lines()}
    elif fmt == "qdrant":
        dense_dim = None

        def lines() -> Iterator[str]:
            nonlocal n, dense_dim
            for doc_id, terms, weights, dense, text in rows:
                vector: dict = {"sparse": {"indices": terms.tolist(), "values": weights.astype(float).tolist()}}
                if dense is not None:
                    vector["dense"] = dense.astype(float).tolist()
                    dense_dim = len(vector["dense"])
                payload = {"doc_id": doc_id} | ({"text": text} if text is not None else {})
                yield json.dumps({"id": n, "vector": vector, "payload": payload}, ensure_ascii=False) + "\n"
                n += 1

        files = {"points.jsonl": lines()}
    else:

        def lines() -> Iterator[str]:
            nonlocal n
            for doc_id, terms, weights, _, text in rows:
                doc = {"doc_id": doc_id} | ({"text": text} if text is not None else {})
                doc["sparse"] = {escape_token(vocab[t]): float(w) for t, w in zip(terms.tolist(), weights.tolist())}
                n += 1
                yield json.dumps({"index": {"_index": index_name, "_id": doc_id}}) + "\n"
                yield json.dumps(doc, ensure_ascii=False) + "\n"

        files = {"bulk.ndjson": lines()}
    written = []
    for name, it in files.items():
        write_file(out / name, lambda tmp, it=it: _write_lines(tmp, it))
        written.append(name)
    if fmt == "qdrant":
        config: dict = {"sparse_vectors": {"sparse": {}}, "vectors": {}}
        if dense_dim is not None:
            config["vectors"] = {"dense": {"size": dense_dim, "distance": "Dot"}}
        write_file(out / "collection.json", lambda tmp: tmp.write_text(json.dumps(config, indent=2)))
        written.append("collection.json")
    if fmt == "elasticsearch":
        mapping = {"mappings": {"properties": {"doc_id": {"type": "keyword"}, "text": {"type": "text"},
                                               "sparse": {"type": "rank_features"}}}}  # fmt: skip
        write_file(out / "mapping.json", lambda tmp: tmp.write_text(json.dumps(mapping, indent=2)))
        written.append("mapping.json")
    logger.info("exported %d documents of %s as %s into %s", n, collection, fmt, out)
    return ExportStats(fmt, n, written)
