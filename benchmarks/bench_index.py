"""Exact sparse retrieval: our index against the peers on the same vectors.

Workloads (SPLADE-tiny vectors; encode them first with ``benchmarks.encoded``):
  scifact   BEIR scifact corpus (5,183 docs) and its 300 test queries
  debian    debian-docs-en (325,473 passages) queried with the 6,980 MS MARCO dev-small queries
  smollm2   BEIR scifact (5,183 docs, 300 test queries) encoded by our LLM encoder smollm2-splade (SmolLM2's
            49,152-term vocabulary, 135 terms a document, 18 a query): the documents from a vector file with ids
            (--smollm2-vectors: the corpus vectors its GPU run wrote), the queries encoded here on the CPU once
            and cached beside the other encoded vectors
  synth1m   1,000,000 synthetic documents bootstrapped from the debian vectors: each document takes
            a debian document's length, its terms are drawn in proportion to the debian document
            frequencies (duplicates merged), and each term's weight is a random debian weight *of that
            term*; queried with the MS MARCO dev-small queries.

Engines: ours (exact), scipy (exact brute force over the float vectors), bmp (alpha = beta = 1,
exact), pisa (MaxScore over quantised impacts, exact), seismic (approximate, default settings),
pyserini (Lucene impact search over the same impacts).
Every engine indexes the same 8-bit impacts except scipy and seismic, which take the float vectors.

For each engine: build seconds, index bytes per posting, single-thread latency p50/p99 and CPU time per
query at k=10 and k=1000, 2-thread batch throughput at k=10, recall@10 and @1000 against the float exact
ranking (and, for ours, a check that the ranking equals indexer.reference's quantised exact ranking).
Prints a table and writes JSON, and per workload a PNG beside it (OUT-WORKLOAD.png: recall against p50 / p99
latency at k=10 and k=1000; ``--replot`` redraws them from the JSON).

    python -m benchmarks.bench_index --workload scifact debian synth1m --out bench-out/index.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "2")  # Seismic and BMP ignore their thread arguments otherwise

import numpy as np  # noqa: E402

from benchmarks.encoded import load  # noqa: E402
from benchmarks.report import table  # noqa: E402
from indexer import Index, IndexBuilder, SparseBatch  # noqa: E402
from indexer.reference import canonical_reference, quantize  # noqa: E402

VOCAB = 30522
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclass
class Workload:
    name: str
    doc_ids: list[str]
    docs: SparseBatch
    query_ids: list[str]
    queries: SparseBatch
    note: str = ""
    vocab: int = VOCAB


@dataclass
class Result:
    engine: str
    build_s: float = float("nan")
    bytes_per_posting: float = float("nan")
    lat: dict[str, float] = field(default_factory=dict)
    qps_2t: float = float("nan")
    recall: dict[str, float] = field(default_factory=dict)
    notes: str = ""


# ---------------------------------------------------------------------------- workloads


def qrels_ids(path: Path) -> set[str]:
    with open(path) as f:
        next(f)
        return {line.split("\t")[0] for line in f if line.strip()}


def subset(ids: list[str], batch: SparseBatch, keep: set[str], limit: int) -> tuple[list[str], SparseBatch]:
    rows = [i for i, q in enumerate(ids) if q in keep and batch.indptr[i + 1] > batch.indptr[i]][: limit or None]
    return [ids[i] for i in rows], SparseBatch.from_rows([tuple(x.tolist() for x in batch.row(i)) for i in rows])


def smollm2_workload(enc: Path, vectors: Path, nq: int) -> Workload:
    from retrieval.corpus import find, read_queries
    from retrieval.vectors import read_vectors, write_vectors

    if not vectors.is_file():
        raise SystemExit(f"{vectors}: no smollm2-splade corpus vectors (python -m benchmarks.ablate_llm encode)")
    doc_ids, docs, _ = read_vectors(vectors, dense=False)
    cached = enc / "smollm2-scifact-queries.safetensors"
    if not cached.is_file():
        from lsr import SparseEncoder

        wanted = qrels_ids(SHARED / "scifact/qrels/test.tsv")
        queries = {q: t for q, t in read_queries(find(SHARED / "scifact", "queries")).items() if q in wanted}
        model = SparseEncoder.from_pretrained("smollm2-splade")
        write_vectors(cached, model.encode_queries(list(queries.values()), batch_size=16), None, list(queries))
    qids, queries, _ = read_vectors(cached, dense=False)
    qids, queries = subset(list(qids), queries, set(qids), nq)
    from lsr.config import SparseEncoderConfig
    from lsr.models import resolve

    vocab = SparseEncoderConfig.load(resolve("smollm2-splade").path).vocab_size
    return Workload("smollm2", list(doc_ids), docs, qids, queries, "smollm2-splade vectors", vocab=vocab)


SMOLLM2_VECTORS = Path("runs/ablate/real-800-steps/corpus-vectors.safetensors")  # its GPU run's corpus vectors


def load_workload(name: str, enc: Path, nq: int, synth_docs: int, smollm2_vectors: Path = SMOLLM2_VECTORS) -> Workload:
    if name == "smollm2":
        return smollm2_workload(enc, smollm2_vectors, nq)
    if name == "scifact":
        doc_ids, docs = load(enc, "scifact-docs")
        qids, queries = load(enc, "scifact-queries")
        qids, queries = subset(qids, queries, qrels_ids(SHARED / "scifact/qrels/test.tsv"), nq)
        return Workload(name, doc_ids, docs, qids, queries)
    qids, queries = load(enc, "msmarco-queries")
    qids, queries = subset(
        qids, queries, qrels_ids(SHARED / "queries-qrels-only/msmarco-passage/qrels/dev-small.tsv"), nq
    )
    doc_ids, docs = load(enc, "debian-docs")
    if name == "debian":
        return Workload(name, doc_ids, docs, qids, queries)
    if name == "synth1m":
        return Workload(
            name, *synthesize(docs, synth_docs), qids, queries, note="bootstrapped from debian, see module doc"
        )
    raise ValueError(name)


def synthesize(docs: SparseBatch, n: int, seed: int = 0) -> tuple[list[str], SparseBatch]:
    rng = np.random.default_rng(seed)
    lengths = np.diff(docs.indptr.astype(np.int64))
    df = np.bincount(docs.indices, minlength=VOCAB)
    # weights of each term, grouped by term (CSC order)
    order = np.argsort(docs.indices, kind="stable")
    term_start = np.concatenate([[0], np.cumsum(df)])
    weights_by_term = docs.values[order]
    cdf = np.cumsum(df) / df.sum()
    out_indptr = [np.zeros(1, dtype=np.uint64)]
    out_idx, out_val = [], []
    total = 0
    for lo in range(0, n, 100_000):
        m = min(100_000, n - lo)
        L = lengths[rng.integers(0, len(lengths), m)]
        rows = np.repeat(np.arange(m), L)
        terms = np.minimum(np.searchsorted(cdf, rng.random(rows.size), side="right"), VOCAB - 1)
        key = rows.astype(np.int64) * VOCAB + terms
        key = np.unique(key)  # sorted; merges duplicate terms within a document
        rows, terms = key // VOCAB, (key % VOCAB).astype(np.int64)
        pick = term_start[terms] + (rng.random(terms.size) * df[terms]).astype(np.int64)
        vals = weights_by_term[pick]
        counts = np.bincount(rows, minlength=m)
        out_indptr.append((np.cumsum(counts) + total).astype(np.uint64))
        total += int(counts.sum())
        out_idx.append(terms.astype(np.uint32))
        out_val.append(vals.astype(np.float32))
    batch = SparseBatch(np.concatenate(out_indptr), np.concatenate(out_idx), np.concatenate(out_val))
    return [f"s{i}" for i in range(n)], batch


# ---------------------------------------------------------------------------- engines


def build_ours(w: Workload, folder: Path) -> Index:
    """Our index over a workload's documents, added 100,000 at a time."""
    with IndexBuilder(folder, vocab_size=w.vocab) as b:
        step = 100_000
        for lo in range(0, w.docs.num_rows, step):
            hi = min(lo + step, w.docs.num_rows)
            a, z = int(w.docs.indptr[lo]), int(w.docs.indptr[hi])
            rows = SparseBatch(w.docs.indptr[lo : hi + 1] - w.docs.indptr[lo], w.docs.indices[a:z], w.docs.values[a:z])
            b.add(w.doc_ids[lo:hi], rows)
    return Index.open(folder)


def dir_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class Engine:
    """One engine at one setting: ``param`` comes from its spec, ``name:param`` (``bmp:8``, ``pisa:block_max_wand``,
    ``ours:block_forward/8``)."""

    name = ""
    notes = ""

    def __init__(self, param: str = "") -> None:
        self.param = param

    def build(self, w: Workload, impacts: np.ndarray, scale: float, tmp: Path) -> int:
        """Build; return the index size in bytes."""
        raise NotImplementedError

    def search(self, qi: int, k: int) -> list[int]:
        """Top-k internal doc numbers of query qi, one thread."""
        raise NotImplementedError

    def batch(self, k: int, threads: int) -> None:
        raise NotImplementedError


class Ours(Engine):
    """``ours`` (exhaustive) or ``ours:ALGORITHM/BLOCK_DOCS`` (``ours:block_forward/8``): the index size then counts
    the algorithm's derived structures too (built by a first search, their time added to the build's)."""

    name = "ours"

    def __init__(self, param: str = "") -> None:
        super().__init__(param)
        algorithm, _, block_docs = (param or "exhaustive").partition("/")
        self.how = {"algorithm": algorithm, "block_docs": int(block_docs or 64)}
        if param:
            self.notes = f"{algorithm}, doc blocks of {self.how['block_docs']}"

    def build(self, w, impacts, scale, tmp):
        self.index = build_ours(w, tmp / "ours")
        self.q = w.queries
        self.rows = [self.q.row(i) for i in range(self.q.num_rows)]
        self.index.search_batch(self.q.take([0]), k=1, threads=1, **self.how)
        return self.index.postings_bytes + self.index.pruning_bytes(**self.how)

    def search(self, qi, k):
        t, v = self.rows[qi]
        q = SparseBatch(np.array([0, len(t)], np.uint64), t, v)
        res = self.index.search_batch(q, k=k, threads=1, **self.how)
        return res.docs[0, : res.counts[0]].tolist()

    def batch(self, k, threads):
        self.index.search_batch(self.q, k=k, threads=threads, **self.how)


class Scipy(Engine):
    name = "scipy"
    notes = "float brute force, one thread"

    def build(self, w, impacts, scale, tmp):
        import scipy.sparse as sp

        rows = np.repeat(np.arange(w.docs.num_rows), np.diff(w.docs.indptr.astype(np.int64)))
        self.csc = sp.csc_matrix((w.docs.values, (rows, w.docs.indices)), shape=(w.docs.num_rows, w.vocab))
        self.rows = [w.queries.row(i) for i in range(w.queries.num_rows)]
        return self.csc.data.nbytes + self.csc.indices.nbytes + self.csc.indptr.nbytes

    def search(self, qi, k):
        t, v = self.rows[qi]
        scores = self.csc[:, t.astype(np.int64)] @ v.astype(np.float32)
        scores = np.asarray(scores).ravel()
        top = np.argpartition(-scores, k)[:k] if k < scores.size else np.arange(scores.size)
        top = top[scores[top] > 0]
        return top[np.lexsort((top, -scores[top]))].tolist()


class Bmp(Engine):
    """``bmp`` (blocks of 32 documents) or ``bmp:BSIZE``."""

    name = "bmp"

    def __init__(self, param: str = "") -> None:
        super().__init__(param)
        self.bsize = int(param or 32)
        self.notes = f"alpha=beta=1 (exact), block size {self.bsize}"

    def build(self, w, impacts, scale, tmp):
        import bmp

        path = str(tmp / "index.bmp")
        ix = bmp.Indexer(path, bsize=self.bsize, compress_range=False)
        ind, ptr = w.docs.indices, w.docs.indptr
        for i in range(w.docs.num_rows):
            a, z = int(ptr[i]), int(ptr[i + 1])
            ix.add_document(str(i), dict(zip(map(str, ind[a:z].tolist()), impacts[a:z].tolist())))
        ix.finish()
        self.s = bmp.Searcher(path)
        self.queries = []
        for i in range(w.queries.num_rows):
            t, v = w.queries.row(i)
            self.queries.append({str(a): max(1, int(round(b * 1000))) for a, b in zip(t.tolist(), v.tolist())})
        return dir_bytes(Path(path))

    def search(self, qi, k):
        docnos, _ = self.s.search(self.queries[qi], k=k, alpha=1.0, beta=1.0)
        return [int(d) for d in docnos]


class Pisa(Engine):
    """``pisa`` (MaxScore) or ``pisa:ALGORITHM`` (``block_max_wand``, ``block_max_maxscore``, ``wand``)."""

    name = "pisa"

    def __init__(self, param: str = "") -> None:
        super().__init__(param)
        self.algorithm = param or "maxscore"
        self.notes = f"{self.algorithm} over the same 8-bit impacts, block_simdbp"

    def build(self, w, impacts, scale, tmp):
        from pyterrier_pisa import PisaIndex, _pisathon

        self._pisathon = _pisathon
        idx = PisaIndex(str(tmp / "pisa"), stemmer="none", stops="none", threads=1)
        ind, ptr = w.docs.indices, w.docs.indptr

        def docs():
            for i in range(w.docs.num_rows):
                a, z = int(ptr[i]), int(ptr[i + 1])
                yield {"docno": str(i), "toks": dict(zip(map(str, ind[a:z].tolist()), impacts[a:z].tolist()))}

        idx.toks_indexer(scale=1.0).index(docs())
        self.retr = idx.quantized(num_results=1000, threads=1, query_algorithm=self.algorithm)
        self.retr.reset_retrieval_context()
        self.queries = []
        for i in range(w.queries.num_rows):
            t, v = w.queries.row(i)
            self.queries.append({str(a): float(b) * 100.0 for a, b in zip(t.tolist(), v.tolist())})
        return dir_bytes(tmp / "pisa")

    def _run(self, inp, k, threads):
        n = len(inp) * k
        qidx = np.empty(n, dtype=np.int32)
        docnos = np.empty(n, dtype=object)
        ranks = np.empty(n, dtype=np.int32)
        scores = np.empty(n, dtype=np.float32)
        size = self._pisathon.retrieve(
            self.retr._ctxt,
            self.algorithm,
            inp,
            k=k,
            threads=threads,
            query_weighted=1,
            pretokenised=True,
            result_qidxs=qidx,
            result_docnos=docnos,
            result_ranks=ranks,
            result_scores=scores,
        )
        return docnos[:size]

    def search(self, qi, k):
        return [int(d) for d in self._run([(0, self.queries[qi])], k, 1)]

    def batch(self, k, threads):
        self._run(list(enumerate(self.queries)), k, threads)


class Seismic(Engine):
    name = "seismic"
    notes = "approximate (defaults: n_postings 3500, query_cut 10, heap_factor 0.7)"

    def build(self, w, impacts, scale, tmp):
        import seismic

        st = seismic.get_seismic_string()
        ds = seismic.SeismicDataset()
        ind, ptr = w.docs.indices, w.docs.indptr
        for i in range(w.docs.num_rows):
            a, z = int(ptr[i]), int(ptr[i + 1])
            ds.add_document(str(i), ind[a:z].astype(str).astype(st), w.docs.values[a:z])
        self.index = seismic.SeismicIndex.build_from_dataset(ds)
        self.index.save(str(tmp / "seismic"))
        self.st = st
        self.queries = [w.queries.row(i) for i in range(w.queries.num_rows)]
        self.qc = [t.astype(str).astype(st) for t, _ in self.queries]
        return dir_bytes(tmp / "seismic.index.seismic")

    def search(self, qi, k):
        res = self.index.search(str(qi), self.qc[qi], self.queries[qi][1], k=k, query_cut=10, heap_factor=0.7)
        return [int(r[2]) for r in res]

    def batch(self, k, threads):
        self.index.batch_search(
            np.array([str(i) for i in range(len(self.qc))], dtype=self.st),
            self.qc,
            [v for _, v in self.queries],
            k=k,
            query_cut=10,
            heap_factor=0.7,
            num_threads=threads,
        )


class Pyserini(Engine):
    name = "pyserini"
    notes = "Lucene impact search (Anserini 1.7.1 in pyserini 1.6.0, Java 21), same 8-bit impacts, query weights x100"

    def build(self, w, impacts, scale, tmp):
        from eval.baselines import start_jvm

        autoclass = start_jvm()
        (tmp / "in").mkdir()
        ind, ptr = w.docs.indices, w.docs.indptr
        with open(tmp / "in" / "docs.jsonl", "w") as f:
            for i in range(w.docs.num_rows):
                a, z = int(ptr[i]), int(ptr[i + 1])
                vec = dict(zip(map(str, ind[a:z].tolist()), impacts[a:z].tolist()))
                f.write(json.dumps({"id": str(i), "contents": "", "vector": vec}) + "\n")
        autoclass("io.anserini.index.IndexCollection").main(
            [
                "-collection",
                "JsonVectorCollection",
                "-input",
                str(tmp / "in"),
                "-index",
                str(tmp / "idx"),
                "-generator",
                "DefaultLuceneDocumentGenerator",
                "-threads",
                "1",
                "-impact",
                "-pretokenized",
                "-optimize",
            ]
        )
        shutil.rmtree(tmp / "in")
        self.s = autoclass("io.anserini.search.SimpleImpactSearcher")(str(tmp / "idx"))
        HashMap, Integer = autoclass("java.util.HashMap"), autoclass("java.lang.Integer")
        self.maps = []  # built up front: the JNI calls that build them are not search time
        for i in range(w.queries.num_rows):
            m = HashMap()
            for t, v in zip(*w.queries.row(i)):
                m.put(str(int(t)), Integer(max(1, int(round(float(v) * 100)))))
            self.maps.append(m)
        return dir_bytes(tmp / "idx")

    def search(self, qi, k):
        return [int(h.docid) for h in self.s.search(self.maps[qi], k)]


ENGINES: dict[str, Callable[[], Engine]] = {
    "ours": Ours,
    "scipy": Scipy,
    "bmp": Bmp,
    "pisa": Pisa,
    "seismic": Seismic,
    "pyserini": Pyserini,
}


# ---------------------------------------------------------------------------- measurement


def latency(engine: Engine, nq: int, k: int) -> tuple[list[list[int]], dict[str, float]]:
    for qi in range(min(nq, 50)):  # warm-up
        engine.search(qi, k)
    wall, cpu, results = [], [], []
    for qi in range(nq):
        t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        results.append(engine.search(qi, k))
        c1, t1 = time.thread_time_ns(), time.perf_counter_ns()
        wall.append((t1 - t0) / 1e6)
        cpu.append((c1 - c0) / 1e6)
    return results, {
        f"p50@{k}": float(np.percentile(wall, 50)),
        f"p99@{k}": float(np.percentile(wall, 99)),
        f"cpu@{k}": float(np.mean(cpu)),
    }


def recall(got: list[list[int]], truth: list[list[int]], k: int) -> float:
    vals = [len(set(g[:k]) & set(t[:k])) / len(t[:k]) for g, t in zip(got, truth) if t]
    return float(np.mean(vals))


def run_workload(w: Workload, engines: list[str], check_queries: int) -> tuple[dict, list[Result]]:
    nq = w.queries.num_rows
    nnz = w.docs.nnz
    ref = canonical_reference(w.docs, w.vocab)
    impacts = quantize(w.docs.values, ref.scale)
    info = {
        "workload": w.name,
        "docs": w.docs.num_rows,
        "postings": nnz,
        "queries": nq,
        "avg_doc_nnz": nnz / w.docs.num_rows,
        "avg_query_nnz": w.queries.nnz / nq,
        "note": w.note,
    }
    print(f"\n== {w.name}: {w.docs.num_rows:,} docs, {nnz:,} postings, {nq} queries", flush=True)
    truth: dict[int, list[list[int]]] = {}
    early: dict[str, dict[int, list[list[int]]]] = {}  # engines that ran before scipy: scored once its truth exists
    results = []
    for name in engines:
        base, _, param = name.partition(":")
        eng = ENGINES[base](param)
        r = Result(name, notes=eng.notes)
        tmp = Path(tempfile.mkdtemp(prefix=f"bench-{base}-"))
        try:
            gc.collect()
            t0 = time.perf_counter()
            size = eng.build(w, impacts, ref.scale, tmp)
            r.build_s = time.perf_counter() - t0
            r.bytes_per_posting = size / nnz
            for k in (10, 1000):
                got, lat = latency(eng, nq, k)
                r.lat.update(lat)
                if name == "scipy":
                    truth[k] = got
                if k in truth:
                    r.recall[f"R@{k}"] = recall(got, truth[k], k)
                else:
                    early.setdefault(name, {})[k] = got
                if base == "ours":
                    r.recall[f"exact@{k}"] = float(
                        all(
                            got[qi] == [h.doc for h in ref.search(*w.queries.row(qi), k=k)]
                            for qi in range(min(nq, check_queries))
                        )
                    )
                    ok = r.recall[f"exact@{k}"] == 1.0
                    r.notes += f" k={k}: {'identical to' if ok else 'DIFFERS from'} the quantised reference ranking"
                    r.notes += f" on {min(nq, check_queries)} queries;"
            try:
                t0 = time.perf_counter()
                eng.batch(10, 2)
                r.qps_2t = nq / (time.perf_counter() - t0)
            except NotImplementedError:
                pass
        except Exception as e:  # a peer failing must not hide the others
            r.notes += f" FAILED: {type(e).__name__}: {e}"
        finally:
            del eng
            shutil.rmtree(tmp, ignore_errors=True)
        results.append(r)
        print(
            f"   {name:8s} build {r.build_s:7.1f}s  p50@10 {r.lat.get('p50@10', float('nan')):7.3f} ms  {r.notes}",
            flush=True,
        )
    # recall of engines that ran before scipy
    for r in results:
        for k, got in early.get(r.engine, {}).items():
            if k in truth:
                r.recall[f"R@{k}"] = recall(got, truth[k], k)
    return info, results


def print_table(info: dict, results: list[Result]) -> None:
    print(
        f"\n### {info['workload']}: {info['docs']:,} docs, {info['postings']:,} postings, {info['queries']} queries "
        f"(avg nnz doc {info['avg_doc_nnz']:.0f}, query {info['avg_query_nnz']:.0f})\n"
    )
    print(table([r.__dict__ for r in results]))
    for r in results:
        if r.notes.strip():
            print(f"- {r.engine}: {r.notes.strip()}")


def plot(run: dict, path: Path) -> None:
    """One PNG per workload: recall against single-thread latency for every engine, at k=10 and k=1000 (a point
    at the p50, a bar to the p99; log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    info = run["info"]
    markers = {"ours": "o", "bmp": "s", "pisa": "^", "scipy": "D", "seismic": "v", "pyserini": "P"}
    colors = plt.get_cmap("tab20").colors
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    unmeasured = sorted({r["engine"] for r in run["results"] if not r["recall"]})
    for ax, k in zip(axes, (10, 1000)):
        for i, r in enumerate(run["results"]):
            p50, p99 = r["lat"].get(f"p50@{k}"), r["lat"].get(f"p99@{k}")
            rec = r["recall"].get(f"R@{k}", r["recall"].get(f"exact@{k}"))  # exact@: without scipy, the 8-bit truth
            if p50 is None or rec is None or p50 != p50:  # not run, or NaN
                continue
            ax.errorbar([p50], [rec], xerr=[[0], [max(p99 - p50, 0)]], capsize=2, label=r["engine"],
                        fmt=markers.get(r["engine"].split(":")[0], "x"), color=colors[i % len(colors)])  # fmt: skip
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.tick_params(axis="x", which="minor", labelsize=6)
        ax.set_xlabel(f"latency at k={k}, one thread (ms, log scale): p50, bar to p99")
        float_truth = any(f"R@{k}" in r["recall"] for r in run["results"])
        ax.set_ylabel(f"recall@{k} against exact {'float' if float_truth else '8-bit impact'} scoring")
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=6, loc="lower right")
    title = f"{info['workload']}: {info['docs']:,} docs, {info['queries']} queries, {info['postings']:,} postings"
    if unmeasured:  # a run without the scipy truth measures no recall for the peers
        title += f"\n(no recall measured, not drawn: {', '.join(unmeasured)})"
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", nargs="+", default=["scifact"], choices=["scifact", "debian", "synth1m", "smollm2"])
    ap.add_argument("--smollm2-vectors", type=Path, default=SMOLLM2_VECTORS)
    ap.add_argument(
        "--engines",
        default="scipy,ours,bmp,pisa,seismic",
        help="comma-separated NAME or NAME:SETTING (ours:block_forward/8, bmp:8, pisa:block_max_wand)",
    )
    ap.add_argument("--encoded", type=Path, default=Path(".cache/encoded"))
    ap.add_argument("--queries", type=int, default=0, help="limit the number of queries (0: all)")
    ap.add_argument("--synth-docs", type=int, default=1_000_000)
    ap.add_argument("--check-queries", type=int, default=200, help="queries checked against the quantised reference")
    ap.add_argument("--out", type=Path, default=Path("bench-out/index.json"))
    ap.add_argument("--replot", action="store_true", help="only draw the PNGs of --out's JSON")
    args = ap.parse_args()
    png = args.out.with_suffix("")
    if args.replot:
        for run in json.loads(args.out.read_text()):
            plot(run, png.with_name(f"{png.name}-{run['info']['workload']}.png"))
        return
    engines = args.engines.split(",")
    out = []
    for name in args.workload:
        w = load_workload(name, args.encoded, args.queries, args.synth_docs, args.smollm2_vectors)
        info, results = run_workload(w, engines, args.check_queries)
        print_table(info, results)
        out.append({"info": info, "results": [r.__dict__ for r in results]})
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2))
        plot(out[-1], png.with_name(f"{png.name}-{name}.png"))
        del w
        gc.collect()


if __name__ == "__main__":
    main()
