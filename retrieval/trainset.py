"""Training data built from what is on disk: pseudo-queries, a round-trip filter, hard negatives, teacher scores.

    lsr trainset --corpus C --queries Q --qrels TRAIN_QRELS --out DIR [--pseudo-passages N] [--device cuda]

Steps (each kept in DIR, so a rerun resumes where the last one stopped):
1. ``pseudo/part-NNNNN.parquet``: for sampled passages, an instruct LLM writes queries (lsr.train.pseudo_queries).
2. ``collection/``: the corpus encoded by the sparse and dense teachers and indexed (retrieval.collection,
   the same job as ``lsr index``); ``bm25/``: a BM25 index of the same texts (bm25s).
3. Mining: every query (real train queries, pseudo-queries) is searched by each teacher (our index for the
   sparse teacher, faiss for the dense one, bm25s), the runs are fused (DBSF), and the top candidates other than
   the known positives become its hard negatives. A pseudo-query is kept only when the fused ranking puts its
   source passage in the top ``roundtrip_k`` (round-trip consistency, Alberti et al. 2019; Promptagator).
4. Teacher scores for every (query, document) pair kept: BM25, the sparse teacher's dot product over float vectors,
   the dense teacher's cosine. These teachers are bi-encoders and BM25, not a cross-encoder: none exists offline.
Then ``train.parquet``, ``docs.parquet`` and ``manifest.json`` (lsr.train.data.write).

Real supervision comes only from a **train** split's qrels; a test split is refused.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .corpus import read_docs, read_qrels, read_queries
from .fusion import Fusion, fuse

logger = logging.getLogger(__name__)

Run = dict[str, dict[str, float]]


@dataclass
class TrainsetSettings:
    sparse_model: str = "splade-tiny"  # the sparse teacher (and the index the negatives are mined with)
    dense_model: str = "minilm-l6"  # the dense teacher
    pseudo_passages: int = 0  # passages sampled for pseudo-queries (0: none; -1: every passage)
    generator: str = "smollm2-135m"
    per_passage: int = 4
    examples: int = 3  # few-shot examples drawn from the train split's (query, positive passage) pairs
    roundtrip_k: int = 3  # keep a pseudo-query when the fused teachers rank its passage in this top
    mine_depth: int = 100  # each teacher's run depth before fusion
    candidates: int = 50  # negatives kept per query (fused order, positives excluded)
    dev_fraction: float = 0.1  # real queries held out (never trained on) as a dev split for choosing settings
    seed: int = 0
    device: str = "cpu"
    batch_size: int = 64
    # another trainset folder over the same corpus whose teachers' indexes (collection/, bm25/) are copied instead of
    # encoding the corpus again (a new set of pseudo-queries over scifact mines in minutes instead of re-encoding)
    teachers_from: str | None = None


def roundtrip_keep(run: Run, sources: dict[str, str], k: int) -> dict[str, bool]:
    """For each query, whether its source document is among the top ``k`` of its run (ties: smaller doc id first,
    as retrieval.fusion.top_k orders them)."""
    keep = {}
    for qid, src in sources.items():
        scores = run.get(qid, {})
        if src not in scores:
            keep[qid] = False
            continue
        s = scores[src]
        better = sum(1 for d, v in scores.items() if v > s or (v == s and d < src))
        keep[qid] = better < k
    return keep


def _bm25(folder: Path, ids: list[str], texts: list[str]) -> Any:
    import bm25s

    if (folder / "params.index.json").is_file():
        return bm25s.BM25.load(str(folder))
    retriever = bm25s.BM25(k1=0.9, b=0.4)
    retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    from indexer.atomic import staged

    with staged(folder, overwrite=True) as work:
        retriever.save(str(work))
        (work / "ids.json").write_text(json.dumps(ids))
    return bm25s.BM25.load(str(folder))


def _pseudo_queries(out: Path, corpus: dict[str, str], examples: list[tuple[str, str]], s: TrainsetSettings) -> dict:
    """{qid: (text, source doc id)} for the sampled passages; generated in parts of 1,024 passages, each kept."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from indexer.atomic import write_file
    from lsr.train.pseudo_queries import GenerationSettings, QueryGenerator

    ids = sorted(corpus)
    random.Random(s.seed).shuffle(ids)
    if s.pseudo_passages >= 0:
        ids = ids[: s.pseudo_passages]
    part_size = 1024
    folder = out / "pseudo"
    folder.mkdir(parents=True, exist_ok=True)
    gen = None
    queries: dict[str, tuple[str, str]] = {}
    for p, lo in enumerate(range(0, len(ids), part_size)):
        path = folder / f"part-{p:05d}.parquet"
        if not path.is_file():
            if gen is None:
                dtype = "bfloat16" if s.device.startswith("cuda") else "float32"
                settings = GenerationSettings(
                    model=s.generator, per_passage=s.per_passage, seed=s.seed, batch_size=s.batch_size
                )
                gen = QueryGenerator(settings, device=s.device, dtype=dtype)
            chunk = ids[lo : lo + part_size]
            made = gen.generate([corpus[d] for d in chunk], examples, show_progress=True)
            rows = [(d, q) for d, qs in zip(chunk, made) for q in qs]
            table = pa.table({"source": [r[0] for r in rows], "query": [r[1] for r in rows]})
            write_file(path, lambda tmp, t=table: pq.write_table(t, tmp))
            logger.info("pseudo-queries: part %d, %d passages, %d queries", p, len(chunk), len(rows))
        t = pq.read_table(path).to_pylist()
        for j, r in enumerate(t):
            queries[f"pseudo-{p:05d}-{j:06d}"] = (r["query"], r["source"])
    return queries


def _write_dev(folder: Path, corpus: Path, queries: Path, qrels: dict[str, dict[str, int]]) -> None:
    """A BEIR folder for the held-out queries (links to the corpus and queries, qrels/dev.tsv): ``lsr eval --data
    FOLDER --split dev`` scores a trained model on queries it never saw, without touching the test split."""
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    for src in (corpus, queries):
        link = folder / src.name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(src.resolve())
    lines = ["query-id\tcorpus-id\tscore"] + [
        f"{q}\t{d}\t{r}" for q in sorted(qrels) for d, r in sorted(qrels[q].items())
    ]
    from indexer.atomic import write_bytes

    write_bytes(folder / "qrels" / "dev.tsv", ("\n".join(lines) + "\n").encode())


def _copy_teachers(src: Path, out: Path, corpus_path: Path, s: TrainsetSettings) -> None:
    """Copy another trainset folder's teacher indexes, after checking they were built from this corpus with these
    teachers; the collection build below then finds them complete."""
    import shutil

    from indexer.atomic import staged

    from .collection import input_fingerprint

    job_file = src / "collection" / "job.json"
    if not job_file.is_file() or not (src / "bm25" / "params.index.json").is_file():
        raise FileNotFoundError(f"{src}: no teachers' indexes to copy (collection/ and bm25/ of an `lsr trainset` run)")
    job = json.loads(job_file.read_text())
    if job.get("input_fingerprint") != input_fingerprint(corpus_path):
        raise ValueError(f"{src}: its teachers indexed another corpus than {corpus_path}")
    if (job.get("sparse_model"), job.get("dense_model")) != (s.sparse_model, s.dense_model):
        raise ValueError(
            f"{src}: its teachers are {job.get('sparse_model')!r} and {job.get('dense_model')!r}, this run asks for "
            f"{s.sparse_model!r} and {s.dense_model!r}"
        )
    for name in ("collection", "bm25"):
        with staged(out / name, overwrite=True) as work:
            shutil.copytree(src / name, work, dirs_exist_ok=True)
    logger.info("teachers' indexes copied from %s", src)


def build_trainset(
    out: str | Path,
    corpus_path: str | Path,
    queries_path: str | Path,
    qrels_path: str | Path,
    settings: TrainsetSettings,
    *,
    fmt: str | None = None,
    generate_only: bool = False,
) -> Path:
    """Run the steps (each resumes from what DIR holds) and return the training-set folder, OUT/set.
    ``generate_only`` stops after the pseudo-queries (e.g. on a GPU machine), returning OUT/pseudo."""
    from lsr import DenseEncoder, SparseEncoder
    from lsr.train import data

    s = settings
    out = Path(out)
    qrels_path = Path(qrels_path)
    if "test" in qrels_path.stem.lower():
        raise ValueError(f"{qrels_path}: a test split is never training data; pass the train split's qrels")
    out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    corpus = {d.id: d.text for d in read_docs(corpus_path, fmt=fmt)}
    if not corpus:
        raise ValueError(f"{corpus_path}: no documents")
    all_queries = read_queries(queries_path)
    qrels = read_qrels(qrels_path)
    real = {}
    for qid, rels in qrels.items():
        pos = [d for d, r in rels.items() if r > 0 and d in corpus]
        if qid in all_queries and pos:
            real[qid] = (all_queries[qid], sorted(pos))
    if not real and s.pseudo_passages == 0:
        raise ValueError(f"{qrels_path}: no judged query with a positive in the corpus, and no pseudo-queries asked")
    if not 0 <= s.dev_fraction < 1:
        raise ValueError("dev_fraction must be in [0, 1)")
    held = sorted(real)
    random.Random(s.seed).shuffle(held)
    held = sorted(held[: round(len(held) * s.dev_fraction)])
    _write_dev(out / "dev", Path(corpus_path), Path(queries_path), {q: qrels[q] for q in held})
    held_out = frozenset(held)
    real = {q: v for q, v in real.items() if q not in held_out}
    times["read"] = time.perf_counter() - t0

    # 1. pseudo-queries
    pseudo: dict[str, tuple[str, str]] = {}
    if s.pseudo_passages:
        t0 = time.perf_counter()
        rng = random.Random(s.seed)
        pairs = [(corpus[p[0]], q) for q, p in sorted(real.values()) if q[:1].isalpha()]
        examples = rng.sample(pairs, min(s.examples, len(pairs)))
        pseudo = _pseudo_queries(out, corpus, examples, s)
        times["generate"] = time.perf_counter() - t0
    if generate_only:
        return out / "pseudo"
    from .collection import Job, build, input_fingerprint  # the native index: not needed to generate
    from .searcher import Collection

    # 2. teachers over the corpus
    t0 = time.perf_counter()
    if s.teachers_from and not (out / "collection").is_dir():
        _copy_teachers(Path(s.teachers_from), out, Path(corpus_path), s)
    sparse = SparseEncoder.from_pretrained(s.sparse_model, device=s.device)
    dense = DenseEncoder.from_pretrained(s.dense_model, device=s.device)
    job = Job(str(corpus_path), fmt, "_id", ("title", "text"), s.sparse_model, s.dense_model, 20_000)
    build(out / "collection", job, sparse, dense, batch_size=s.batch_size)
    col = Collection.open(out / "collection")
    ids = [col.sparse.lexicon[i] for i in range(col.num_docs)]
    row_of = {d: i for i, d in enumerate(ids)}
    bm25 = _bm25(out / "bm25", ids, [corpus[d] for d in ids])
    times["teachers"] = time.perf_counter() - t0

    # 3. mining: each teacher's run, fused
    t0 = time.perf_counter()
    texts = {qid: q for qid, (q, _) in real.items()} | {qid: q for qid, (q, _) in pseudo.items()}
    qids = list(texts)
    qsparse = sparse.encode_queries([texts[q] for q in qids], batch_size=s.batch_size)
    qdense = dense.encode_queries([texts[q] for q in qids])
    depth = min(s.mine_depth, col.num_docs)
    res = col.sparse.search_batch(qsparse, k=depth)
    run_sparse: Run = {q: {h.doc_id: h.score for h in col.sparse.hits(res, i)} for i, q in enumerate(qids)}
    run_dense: Run = {q: dict(hits) for q, hits in zip(qids, col.search_dense_batch(qdense, depth))}
    import bm25s

    qtok = bm25s.tokenize([texts[q] for q in qids], stopwords="en", show_progress=False)
    brow, bscore = bm25.retrieve(qtok, k=depth, show_progress=False, n_threads=0)
    run_bm25: Run = {
        q: {ids[int(r)]: float(v) for r, v in zip(brow[i], bscore[i]) if v > 0} for i, q in enumerate(qids)
    }
    fused = fuse([run_bm25, run_sparse, run_dense], Fusion("dbsf", (1.0, 1.0, 1.0)), k=depth)
    times["mine"] = time.perf_counter() - t0

    sources = {q: src for q, (_, src) in pseudo.items()}
    kept_pseudo = roundtrip_keep(fused, sources, s.roundtrip_k)
    # where the fused teachers put each pseudo-query's passage: how strict the round-trip depth is
    reach = {f"top{k}": sum(roundtrip_keep(fused, sources, k).values()) for k in (1, 3, 10, depth)}

    # 4. teacher scores for every pair kept
    t0 = time.perf_counter()
    matrix = col.float_matrix()
    dvec = col.dense_rows  # the flat index's rows (the job asks for a flat dense index)
    rows: list[dict] = []
    for i, qid in enumerate(qids):
        if qid in pseudo and not kept_pseudo[qid]:
            continue
        positives = real[qid][1] if qid in real else [pseudo[qid][1]]
        negs = [d for d in fused[qid] if d not in positives][: s.candidates]
        doc_ids = positives + negs
        r = np.array([row_of[d] for d in doc_ids])
        lo, hi = int(qsparse.indptr[i]), int(qsparse.indptr[i + 1])
        qv = np.zeros(matrix.shape[1], np.float64)
        qv[qsparse.indices[lo:hi]] = qsparse.values[lo:hi]
        tok = bm25s.tokenize([texts[qid]], stopwords="en", show_progress=False, return_ids=False)[0]
        bm = bm25.get_scores(tok)[r] if tok else np.zeros(len(r))
        rows.append(
            {
                "qid": qid,
                "query": texts[qid],
                "source": "train" if qid in real else "pseudo",
                "doc_ids": doc_ids,
                "label": [1] * len(positives) + [0] * len(negs),
                "bm25": [float(x) for x in bm],
                "splade": [float(x) for x in matrix[r] @ qv],
                "dense": [float(x) for x in dvec[r] @ qdense[i]],
            }
        )
    times["score"] = time.perf_counter() - t0
    from indexer.manifest import sha256_file

    negs_per_query = [len(r["doc_ids"]) - sum(r["label"]) for r in rows]
    manifest = {
        "corpus": {"path": str(Path(corpus_path).resolve()), "sha256": sha256_file(Path(corpus_path)),
                   "fingerprint": input_fingerprint(Path(corpus_path)), "documents": len(corpus)},
        "queries": {"path": str(Path(queries_path).resolve()), "sha256": sha256_file(Path(queries_path))},
        "qrels": {"path": str(qrels_path.resolve()), "sha256": sha256_file(qrels_path)},
        "settings": asdict(s),
        "teachers": {"bm25": "bm25s (k1 0.9, b 0.4, English stopwords)", "splade": s.sparse_model,
                     "dense": s.dense_model, "note": "bi-encoder and BM25 teachers; no cross-encoder exists offline"},
        "counts": {
            "train_queries": len(real),
            "dev_queries_held_out": len(held),
            "pseudo_passages": len({src for _, src in pseudo.values()}),
            "pseudo_generated": len(pseudo),
            "pseudo_kept": sum(kept_pseudo.values()),
            "pseudo_source_rank": reach,
            "negatives_per_query_mean": float(np.mean(negs_per_query)) if rows else 0.0,
        },
        "seconds": {k: round(v, 2) for k, v in times.items()},
    }  # fmt: skip
    return data.write(out / "set", rows, {d: corpus[d] for d in corpus}, manifest)


def add_model_teacher(
    src: str | Path,
    out: str | Path,
    model: str,
    *,
    doc_vectors: str | Path | None = None,
    device: str = "cpu",
    batch_size: int = 32,
) -> Path:
    """A copy of the training set ``src`` in ``out`` with one more teacher, ``model``: the dot products of a trained
    sparse encoder of ours for every (query, document) pair of the set (self-distillation: the LLM encoder trained
    here teaching SPLADE-tiny beside the ensemble). The documents' vectors come from ``doc_vectors`` when given (a
    vector file with ids, retrieval.vectors: a collection's shard, or the corpus encoded by that model on a GPU
    machine), else they are encoded here; the queries are always encoded here. Returns ``out``."""
    from indexer.manifest import sha256_file
    from lsr import SparseEncoder
    from lsr.train import data

    ts = data.TrainSet.load(src)
    enc = SparseEncoder.from_pretrained(model, device=device)
    needed = sorted({d for r in ts.rows for d in r["doc_ids"]})
    source: dict[str, Any] = {"name": str(model), "vocab_hash": enc.vocab_hash}
    if doc_vectors is not None:
        from .vectors import read_vectors

        ids, sparse, _ = read_vectors(Path(doc_vectors), dense=False)
        if ids is None:
            raise ValueError(f"{doc_vectors}: the vector file stores no document ids")
        sparse = sparse.validated(enc.vocab_size, what=f"{doc_vectors} (vectors of {model})")
        row_of = {d: i for i, d in enumerate(ids)}
        missing = [d for d in needed if d not in row_of]
        if missing:
            raise ValueError(f"{doc_vectors}: lacks {len(missing)} of the set's documents, e.g. {missing[0]!r}")
        D = sparse.to_scipy(enc.vocab_size)
        source.update(doc_vectors=str(Path(doc_vectors).resolve()), doc_vectors_sha256=sha256_file(Path(doc_vectors)))
    else:
        t0 = time.perf_counter()
        D = enc.encode_documents([ts.docs[d] for d in needed], batch_size=batch_size).to_scipy(enc.vocab_size)
        row_of = {d: i for i, d in enumerate(needed)}
        logger.info("%d documents encoded by %s in %.0f s", len(needed), model, time.perf_counter() - t0)
    Q = enc.encode_queries([r["query"] for r in ts.rows], batch_size=batch_size).to_scipy(enc.vocab_size)
    rows = []
    for i, r in enumerate(ts.rows):
        scores = (D[[row_of[d] for d in r["doc_ids"]]] @ Q[i].T).toarray().ravel()
        rows.append({**r, "model": [float(x) for x in scores]})
    manifest = dict(ts.manifest)
    manifest["teachers"] = {**manifest.get("teachers", {}), "model": source}
    return data.write(out, rows, ts.docs, manifest)
