"""The ablation table of the LLM-backbone encoder (SmolLM2-135M as Mistral-SPLADE / PROSPER): train, encode, report.

    python -m benchmarks.ablate_llm train  --rows all --parallel 3          (GPU machine)
    python -m benchmarks.ablate_llm encode --rows all --data DATA           (GPU machine)
    python -m benchmarks.ablate_llm lookup --rows ROW                       (anywhere: CPU, minutes)
    python -m benchmarks.ablate_llm report --data ../shared/data/scifact    (anywhere: ir_measures)
    python -m benchmarks.ablate_llm ship --rows ROW --alias NAME            (the row's model into lsr/weights)

Every row is configs/smollm2-ablate.toml plus the ``--set`` overrides in ROWS, trained into runs/ablate/<row>
(one command and one config per row: ``lsr train configs/smollm2-ablate.toml --set ...``).

``encode`` loads each trained model on the device, encodes the whole corpus (title + text) and both query sets
(the training set's held-out dev queries, for choosing, and the BEIR test split, for reporting), scores every
query against every document exactly (a sparse matrix product: the slow, obviously-correct twin of the index),
and writes the top 1000 as TREC runs (``sparse``, and ``dense`` for the dense head), stats.json (average
non-zeros per query and per document, documents per second on the device, bf16) and the corpus vectors
(corpus-vectors.safetensors, retrieval.vectors' format, a few MB, to bring back from a GPU machine).

``lookup`` trains inference-free queries for a row's model on those vectors (configs/smollm2-splade-if.toml,
LookupTrainer on the CPU) and scores the dev and test queries with them (``lookup`` runs, µs per query).

``ship`` copies a row's model into lsr/weights/NAME and its lookup into lsr/weights/NAME-if (each with its run.json,
log.jsonl and config under training/), and keeps its scifact scores as data in eval/expected/scifact-NAME.json:
the test scores of its runs, plus a few test queries' top documents with their scores from the GPU run, which
tests/test_regression_smollm2.py re-encodes on the CPU (the whole corpus would take an hour there).

``report`` evaluates the runs (nDCG@10, R@100), fuses each row's sparse and dense runs with the DBSF weight tuned
on the dev queries (never on test), prints the table and writes runs/ablate/report.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

CONFIG = "configs/smollm2-ablate.toml"
ROOT = Path("runs/ablate")
MAIN = "echo+res+focus+dense"
ROWS: dict[str, list[str]] = {
    MAIN: [],
    "causal (no echo)": ["model.settings.echo=false", "model.settings.max_length=256",
                         "model.settings.query_max_length=48"],
    "bidirectional": ["model.settings.echo=false", "model.settings.bidirectional=true",
                      "model.settings.max_length=256", "model.settings.query_max_length=48"],
    "no residual": ["model.settings.literal_residual=false"],
    "flops x0.3": ["sparsity.query=3e-4", "sparsity.document=3e-4"],
    "flops x3": ["sparsity.query=3e-3", "sparsity.document=3e-3"],
    "no dense head": ["model.settings.dense_pooling=none", "loss.dense=0"],
    "no focus window": ["model.settings.focus_window=false"],
    # round 2: the best round-1 row (no dense head: in every row with the literal residual the dense loss stayed at
    # chance, see README) trained three times longer, on the train queries plus the 2,045 pseudo-queries whose
    # passage the teachers rank in their top 100 (lsr trainset --pseudo-passages -1 --roundtrip-k 100)
    "long, +pseudo": ["data.train=runs/ts-gen100/set", "optim.epochs=100", "optim.max_steps=400",
                      "model.settings.dense_pooling=none", "loss.dense=0"],
    # round 3 (prepared, not run yet): twice as long; and whether the dense head learns when its loss is not
    # drowned by the sparse ones (in round 1 its InfoNCE stayed at chance in every row with the literal residual)
    "longer, +pseudo": ["data.train=runs/ts-gen100/set", "optim.epochs=100", "optim.max_steps=800",
                        "model.settings.dense_pooling=none", "loss.dense=0"],
    "dense x10": ["data.train=runs/ts-gen100/set", "optim.epochs=100", "optim.max_steps=400", "loss.dense=10.0"],
    # round 3: "long, +pseudo" with PROSPER's literal residual started as binary-tf IDF (TiedResidual.
    # start_from_idf: a fresh model lifts its own tokens by their IDF; defined, not run: the device time ran out),
    # and the same with the LM-head bias started at -26 as well (run on an H100): SmolLM2's max-pooled logits over
    # a passage are nearly all positive (49,115 of 49,152 entries above 10 on average, the passage's own tokens at
    # a median of 28), so a fresh encoder is noise that fills the focusing window; at -26 about 730 entries a
    # passage stay positive and two thirds of its own tokens (benchmarks/probe_smollm2.py)
    "idf start, +pseudo": ["data.train=runs/ts-gen100/set", "optim.epochs=100", "optim.max_steps=400",
                           "model.settings.dense_pooling=none", "loss.dense=0", "model.residual_init=idf"],
    "idf + head bias start": ["data.train=runs/ts-gen100/set", "optim.epochs=100", "optim.max_steps=400",
                              "model.settings.dense_pooling=none", "loss.dense=0", "model.residual_init=idf",
                              "model.settings.head_bias=true", "model.head_bias_start=-26"],
    # round 4: data, the lever round 3 pointed at. Eight SmolLM2 pseudo-queries a passage instead of four (lsr trainset
    # --pseudo-passages -1 --per-passage 8 --roundtrip-k 100: more of them pass the round-trip filter), with the
    # recipe and the 400 steps of "long, +pseudo" otherwise unchanged
    "more pseudo": ["data.train=runs/ts-gen8/set", "optim.epochs=100", "optim.max_steps=400",
                    "model.settings.dense_pooling=none", "loss.dense=0"],
    # round 5 (prepared): round 4 says the real queries teach more than SmolLM2's pseudo-queries, and that the LLM's
    # document side is worth more than its query side (inference-free queries over its vectors beat its own query
    # encoder). So: the 728 real queries alone for 400 steps; and the same with the documents trained against
    # inference-free queries from the start (OpenSearch's doc-only recipe, [model] queries = "lookup-joint")
    "real, 400 steps": ["optim.epochs=100", "optim.max_steps=400", "model.settings.dense_pooling=none",
                        "loss.dense=0"],
    "doc-only, real": ["optim.epochs=100", "optim.max_steps=400", "model.settings.dense_pooling=none", "loss.dense=0",
                       "model.queries=lookup-joint", "sparsity.query=0"],
    # and doc-only from round 3's start (literal residual as binary-tf IDF, LM-head bias at -26): with IDF-weighted
    # lookup queries the untrained document side then starts close to binary IDF instead of noise over the vocabulary
    "doc-only, idf start": ["optim.epochs=100", "optim.max_steps=400", "model.settings.dense_pooling=none",
                            "loss.dense=0", "model.queries=lookup-joint", "sparsity.query=0",
                            "model.residual_init=idf", "model.settings.head_bias=true", "model.head_bias_start=-26"],
    # round 6 (prepared): round 5's steps on the real queries were the lever (135 -> 400 steps: test 0.5694 ->
    # 0.6497; its losses still falling at the end), so twice as many, with the model's queries and doc-only
    "real, 800 steps": ["optim.epochs=200", "optim.max_steps=800", "model.settings.dense_pooling=none",
                        "loss.dense=0"],
    "doc-only, 800 steps": ["optim.epochs=200", "optim.max_steps=800", "model.settings.dense_pooling=none",
                            "loss.dense=0", "model.queries=lookup-joint", "sparsity.query=0"],
    # round 7: the shipped row with a dense head trained jointly, on block 28 of 30 (the mean of its hidden states
    # ranks far better than the last ones', benchmarks/dense_head.py) through a trained projection; round 1's head
    # on the last hidden states stayed near chance beside the literal residual
    "joint dense, block 28": ["optim.epochs=200", "optim.max_steps=800", "model.settings.dense_layer=28",
                              "model.settings.dense_projection=true"],
}  # fmt: skip


def slug(row: str) -> str:
    return re.sub("-+", "-", "".join(c if c.isalnum() else "-" for c in row)).strip("-")


def pick(rows: str) -> list[str]:
    if rows == "all":
        return list(ROWS)
    chosen = [r.strip() for r in rows.split(",")]
    unknown = [r for r in chosen if r not in ROWS and r not in {slug(x) for x in ROWS}]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; rows: {[slug(r) for r in ROWS]}")
    return [r for r in ROWS if r in chosen or slug(r) in chosen]


def train(rows: list[str], parallel: int, minutes: float | None, extra: list[str]) -> None:
    """One `python -m lsr.train` process per row, ``parallel`` at a time on the one device."""
    pending = list(rows)
    running: list[tuple[str, subprocess.Popen]] = []
    while pending or running:
        while pending and len(running) < parallel:
            row = pending.pop(0)
            out = ROOT / slug(row)
            out.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, "-m", "lsr.train", CONFIG, "--set", f"run.out={out}"]
            for s in [*ROWS[row], *extra]:
                cmd += ["--set", s]
            if minutes:
                cmd += ["--minutes", str(minutes)]
            log = open(out / "train.log", "a")  # noqa: SIM115
            running.append((row, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)))
            logger.info("started %s: %s", row, " ".join(cmd))
        time.sleep(5)
        for row, proc in list(running):
            if proc.poll() is not None:
                running.remove((row, proc))
                logger.info("%s finished with exit status %d", row, proc.returncode)


def _corpus(data: Path) -> tuple[list[str], list[str]]:
    from retrieval.corpus import find, read_docs

    docs = list(read_docs(find(data, "corpus")))
    return [d.id for d in docs], [d.text for d in docs]


def _split(data: Path, split: str) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """A split's judged queries and qrels (no index needed: this runs on a bare GPU machine)."""
    from retrieval.corpus import find, read_qrels, read_queries

    qrels = read_qrels(data / "qrels" / f"{split}.tsv")
    queries = read_queries(find(data, "queries"))
    return {q: queries[q] for q in qrels if q in queries}, qrels


def _topk_run(scores: np.ndarray, qids: list[str], dids: list[str], k: int) -> dict[str, dict[str, float]]:
    run = {}
    k = min(k, scores.shape[1])
    for i, q in enumerate(qids):
        top = np.argpartition(-scores[i], k - 1)[:k]
        run[q] = {dids[j]: float(scores[i, j]) for j in top}
    return run


def encode(rows: list[str], data: Path, dev: Path, device: str, dtype: str, batch_size: int, k: int) -> None:
    import torch

    from lsr import SparseEncoder
    from retrieval import trec

    dids, texts = _corpus(data)
    splits = {"dev": _split(dev, "dev")[0], "test": _split(data, "test")[0]}
    for row in rows:
        folder = ROOT / slug(row)
        if not (folder / "model").is_dir():
            logger.warning("%s: no trained model in %s, skipped", row, folder)
            continue
        enc = SparseEncoder.from_pretrained(folder / "model", device=device, dtype=dtype)
        enc.encode(texts[:64], batch_size=batch_size)  # warm-up
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        d = enc.encode(texts, batch_size=batch_size)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        D = d.sparse.to_scipy(enc.vocab_size)
        save_vectors(folder, dids, D, d.dense)  # for the lookup stage (a few MB), which runs anywhere
        stats = {"docs_per_s": len(texts) / seconds, "nnz_document": D.nnz / D.shape[0], "device": device,
                 "dtype": dtype, "batch_size": batch_size, "documents": len(texts)}  # fmt: skip
        if device.startswith("cuda"):
            stats["gpu"] = torch.cuda.get_device_name()
        for split, queries in splits.items():
            qids = list(queries)
            q = enc.encode([queries[x] for x in qids], side="query", batch_size=batch_size)
            Q = q.sparse.to_scipy(enc.vocab_size)
            stats[f"nnz_query_{split}"] = Q.nnz / Q.shape[0]
            trec.write_run(folder / f"{split}.sparse.trec", _topk_run((Q @ D.T).toarray(), qids, dids, k), "sparse")
            if q.dense is not None:
                dense_run = _topk_run(q.dense @ d.dense.T, qids, dids, k)
                trec.write_run(folder / f"{split}.dense.trec", dense_run, "dense")
        (folder / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
        logger.info("%s: %s", row, stats)
        del enc
        if device.startswith("cuda"):
            torch.cuda.empty_cache()


VECTORS = "corpus-vectors.safetensors"
LOOKUP_CONFIG = "configs/smollm2-splade-if.toml"


DENSE_VECTORS = "corpus-dense.safetensors"  # a dense head's rows, apart: each file under 16 MB to fetch


def save_vectors(folder: Path, ids: list[str], D, dense: np.ndarray | None) -> None:  # noqa: ANN001
    """The corpus's rows beside the row's runs, in the one vector-file format (retrieval.vectors): the sparse rows
    in VECTORS, a dense head's rows (if any) in DENSE_VECTORS."""
    from indexer import SparseBatch
    from retrieval.vectors import write_vectors

    write_vectors(folder / VECTORS, SparseBatch(D.indptr.astype(np.uint64), D.indices.astype(np.uint32),
                                                D.data.astype(np.float32)), None, ids)  # fmt: skip
    if dense is not None:
        save_dense(folder / DENSE_VECTORS, ids, dense)


def save_dense(path: Path, ids: list[str], dense: np.ndarray) -> None:
    """Dense rows alone (no sparse terms) in the one vector-file format, with their ids."""
    from indexer import SparseBatch
    from retrieval.vectors import write_vectors

    write_vectors(path, SparseBatch.from_rows({} for _ in ids), dense, ids)


def load_dense(path: Path) -> tuple[list[str], np.ndarray]:
    """The ids and float32 rows ``save_dense`` wrote."""
    from retrieval.vectors import read_vectors

    ids, _, dense = read_vectors(path)
    if ids is None or dense is None:
        raise ValueError(f"{path}: no ids or no dense rows: not a file of save_dense")
    return list(ids), np.asarray(dense, dtype=np.float32)


def load_vectors(folder: Path, vocab_size: int) -> tuple[list[str], object, np.ndarray | None]:
    from retrieval.vectors import read_vectors

    ids, sparse, dense = read_vectors(folder / VECTORS)
    if (folder / DENSE_VECTORS).is_file():
        dense_ids, dense = load_dense(folder / DENSE_VECTORS)
        if dense_ids != list(ids):
            raise ValueError(f"{folder}: {DENSE_VECTORS} holds other documents than {VECTORS}")
    return list(ids), sparse.to_scipy(vocab_size), (None if dense is None else np.asarray(dense, np.float32))


def lookup(rows: list[str], data: Path, dev: Path, k: int, extra: list[str]) -> None:
    """Inference-free queries for each row's trained model (LookupTrainer, LOOKUP_CONFIG, on this machine's CPU),
    trained against the corpus vectors the encode stage saved; dev and test runs scored exactly against the same
    vectors (``lookup`` runs), and the CPU cost of encoding one query (µs, one at a time) in stats.json."""
    from lsr import SparseEncoder
    from lsr.config import SparseEncoderConfig
    from lsr.train.config import TrainConfig, parse_overrides
    from lsr.train.lookup import LookupTrainer
    from retrieval import trec

    splits = {"dev": _split(dev, "dev")[0], "test": _split(data, "test")[0]}
    for row in rows:
        folder = ROOT / slug(row)
        if not (folder / VECTORS).is_file():
            logger.warning("%s: no %s (run the encode stage first), skipped", row, VECTORS)
            continue
        run = json.loads((folder / "run.json").read_text())
        sets = [f"model.base={folder / 'model'}", f"data.train={run['config']['data']['train']}",
                f"run.out={folder / 'lookup'}", *extra]  # fmt: skip
        cfg = TrainConfig.load(LOOKUP_CONFIG, parse_overrides(sets))
        dids, D, dense = load_vectors(folder, SparseEncoderConfig.load(folder / "model").vocab_size)
        LookupTrainer(cfg).train(show_progress=False, vectors=(dids, D, dense))
        enc = SparseEncoder.from_pretrained(folder / "lookup" / "model")
        stats = json.loads((folder / "stats.json").read_text())
        for split, queries in splits.items():
            qids = list(queries)
            Q = enc.encode_queries([queries[x] for x in qids]).to_scipy(D.shape[1])
            stats[f"lookup_nnz_query_{split}"] = Q.nnz / Q.shape[0]
            trec.write_run(folder / f"{split}.lookup.trec", _topk_run((Q @ D.T).toarray(), qids, dids, k), "lookup")
        texts = list(splits["test"].values())
        enc.encode_queries(texts[:10])
        t0 = time.perf_counter()
        for t in texts:
            enc.encode_queries([t])
        stats["lookup_query_us"] = (time.perf_counter() - t0) / len(texts) * 1e6
        (folder / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
        logger.info("%s: lookup queries %.0f µs each", row, stats["lookup_query_us"])


def _hybrid(runs: dict, qrels: dict, sparse: str, dense: str, name: str, measures: tuple[str, ...]) -> dict:
    """A row's ``sparse`` runs fused with ``dense`` runs by DBSF, the dense weight tuned on dev (never on test)."""
    from eval import metrics
    from retrieval.fusion import Fusion, fuse
    from retrieval.fusion import grid as fusion_grid

    best, best_score = Fusion("dbsf", (1.0, 1.0)), -1.0
    for f in fusion_grid("dbsf"):
        score = metrics.evaluate(fuse([runs["dev", sparse], runs["dev", dense]], f), qrels["dev"],
                                 ("nDCG@10",))["nDCG@10"]  # fmt: skip
        if score > best_score:
            best, best_score = f, score
    rec = {f"{name}_dense_weight": best.weights[1]}
    for split in qrels:
        fused = fuse([runs[split, sparse], runs[split, dense]], best)
        for m, v in metrics.evaluate(fused, qrels[split], measures).items():
            rec[f"{split}_{name}_{m}"] = v
    return rec


def dense_runs(model: str, data: Path, dev: Path, k: int) -> dict:
    """A separate dense model's dev and test runs over the corpus (exact inner products), computed once on this
    machine and kept in runs/ablate/_dense-MODEL; the report fuses every row's sparse runs with them."""
    from retrieval import trec

    folder = ROOT / f"_dense-{model}"
    splits = {"dev": _split(dev, "dev")[0], "test": _split(data, "test")[0]}
    if not all((folder / f"{s}.dense.trec").is_file() for s in splits):
        from lsr.dense_encoder import DenseEncoder

        enc = DenseEncoder.from_pretrained(model)
        dids, texts = _corpus(data)
        D = enc.encode_documents(texts)
        folder.mkdir(parents=True, exist_ok=True)
        for split, queries in splits.items():
            qids = list(queries)
            Q = enc.encode_queries([queries[x] for x in qids])
            trec.write_run(folder / f"{split}.dense.trec", _topk_run(Q @ D.T, qids, dids, k), model)
    return {(s, "other"): trec.read_run(folder / f"{s}.dense.trec") for s in splits}


def report(rows: list[str], data: Path, dev: Path, out: Path, dense_model: str | None = None,
           k: int = 1000) -> list[dict]:  # fmt: skip
    from benchmarks.report import grid as table
    from eval import metrics
    from retrieval import trec

    qrels = {"dev": _split(dev, "dev")[1], "test": _split(data, "test")[1]}
    measures = ("nDCG@10", "R@100")
    other = dense_runs(dense_model, data, dev, k) if dense_model else {}
    results = []
    for row in rows:
        folder = ROOT / slug(row)
        if not (folder / "stats.json").is_file():
            continue
        stats = json.loads((folder / "stats.json").read_text())
        rec: dict = {"row": row, **stats}
        runs = {(s, m): trec.read_run(folder / f"{s}.{m}.trec") for s in qrels for m in ("sparse", "dense", "lookup")
                if (folder / f"{s}.{m}.trec").is_file()}  # fmt: skip
        for (split, mode), run in runs.items():
            for m, v in metrics.evaluate(run, qrels[split], measures).items():
                rec[f"{split}_{mode}_{m}"] = v
        if ("dev", "dense") in runs:  # its own dense head
            rec.update(_hybrid(runs, qrels, "sparse", "dense", "hybrid", measures))
        for mode in ("sparse", "lookup"):  # beside a separate dense model (MiniLM), as the service serves it
            if ("dev", mode) in runs and other:
                rec.update(_hybrid({**runs, **other}, qrels, mode, "other", f"{mode}_other_hybrid", measures))
        train_log = [json.loads(x) for x in (folder / "log.jsonl").read_text().splitlines()] if (
            folder / "log.jsonl").is_file() else []  # fmt: skip
        if train_log:
            rec["train_steps"] = train_log[-1]["step"]
            rec["train_seq_per_s"] = float(np.mean([r["sequences_per_s"] for r in train_log]))
        results.append(rec)
    other_name = dense_model or "dense model"
    head = ["row", "dev nDCG@10", "test nDCG@10", "test R@100", "nnz q", "nnz d", "docs/s",
            "dense test nDCG@10", "hybrid test nDCG@10", "lookup queries: test nDCG@10", "µs / query",
            f"+ {other_name}: test nDCG@10", f"lookup + {other_name}: test"]  # fmt: skip

    def f(x: float | None, nd: int = 4) -> str:
        return "—" if x is None else f"{x:.{nd}f}"

    body = [[r["row"], f(r.get("dev_sparse_nDCG@10")), f(r.get("test_sparse_nDCG@10")), f(r.get("test_sparse_R@100")),
             f(r.get("nnz_query_test"), 1), f(r.get("nnz_document"), 1), f(r.get("docs_per_s"), 0),
             f(r.get("test_dense_nDCG@10")), f(r.get("test_hybrid_nDCG@10")), f(r.get("test_lookup_nDCG@10")),
             f(r.get("lookup_query_us"), 0), f(r.get("test_sparse_other_hybrid_nDCG@10")),
             f(r.get("test_lookup_other_hybrid_nDCG@10"))] for r in results]  # fmt: skip
    print(table(head, body))  # noqa: T201 - a benchmark prints its table
    out.write_text(json.dumps(results, indent=2) + "\n")
    return results


PAIRS_QUERIES, PAIRS_DOCS = 4, 3  # test queries (the first by id) and top documents each kept for the CPU check


def ship(row: str, alias: str, data: Path) -> Path:
    """The row's model and lookup into lsr/weights (atomically, replacing a previous copy) and its scores into
    eval/expected/scifact-ALIAS.json; returns that file. The model cards (README.md) are written by hand."""
    import shutil

    from eval import metrics
    from indexer.atomic import staged, write_bytes
    from lsr.models import WEIGHTS_DIR
    from retrieval import trec

    folder = ROOT / slug(row)
    run = json.loads((folder / "run.json").read_text())
    cards = {name: (WEIGHTS_DIR / name / "README.md") for name in (alias, f"{alias}-if")}
    kept = {name: p.read_bytes() for name, p in cards.items() if p.is_file()}
    parts = {alias: (folder / "model", folder, Path("configs") / f"{alias}.toml"),
             f"{alias}-if": (folder / "lookup" / "model", folder / "lookup", Path(LOOKUP_CONFIG))}  # fmt: skip
    for name, (model, train_dir, config) in parts.items():
        if not model.is_dir():
            raise SystemExit(f"{model}: no model to ship (train, or run the lookup stage, first)")
        with staged(WEIGHTS_DIR / name, overwrite=True) as work:
            for f in model.iterdir():
                if f.is_file() and not (name.endswith("-if") and f.name.startswith(("tokenizer", "chat_template"))):
                    shutil.copy2(f, work / f.name)  # a lookup reads its document encoder's tokenizer
            (work / "training").mkdir()
            for f in ("run.json", "log.jsonl"):
                shutil.copy2(train_dir / f, work / "training" / f)
            shutil.copy2(config, work / "training" / config.name)
            if not name.endswith("-if"):
                shutil.copy2(Path(run["config"]["data"]["train"]) / "manifest.json",
                             work / "training" / "trainset-manifest.json")  # fmt: skip
            else:  # the lookup names the shipped document encoder, not the run's folder
                cfg = json.loads((work / "query_lookup.json").read_text())
                cfg["document_encoder"] = alias
                (work / "query_lookup.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
            if name in kept:
                (work / "README.md").write_bytes(kept[name])
    qrels = _split(data, "test")[1]
    stats = json.loads((folder / "stats.json").read_text())
    runs = {m: trec.read_run(folder / f"test.{m}.trec") for m in ("sparse", "lookup")}
    measures = ("nDCG@10", "R@100", "R@1000", "RR@10")
    qids = sorted(runs["sparse"])[:PAIRS_QUERIES]
    pairs = {m: {q: dict(sorted(runs[m][q].items(), key=lambda x: -x[1])[:PAIRS_DOCS]) for q in qids}
             for m in runs}  # fmt: skip
    expected = {
        "sparse_model": alias,
        "query_model": f"{alias}-if",
        "made_by": f"python -m benchmarks.ablate_llm ship --rows {slug(row)} --alias {alias}",
        "row": row,
        "device": stats.get("gpu"),
        "dtype": stats.get("dtype"),
        "scores": {m: metrics.evaluate(r, qrels, measures) for m, r in runs.items()},
        "query_nnz": {"sparse": stats["nnz_query_test"], "lookup": stats["lookup_nnz_query_test"]},
        "doc_nnz": stats["nnz_document"],
        "pairs": pairs,
    }
    out = Path("eval/expected") / f"scifact-{alias}.json"
    write_bytes(out, (json.dumps(expected, indent=2) + "\n").encode())
    logger.info("shipped %s as %s and %s-if; scores in %s", row, alias, alias, out)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=("train", "encode", "lookup", "report", "ship"))
    p.add_argument("--alias", default="smollm2-splade", help="ship: the name in lsr/weights")
    p.add_argument("--dense-model", default="minilm-l6", help="report: fuse every row with this dense model too "
                   "(its runs computed once here); '' for none")  # fmt: skip
    p.add_argument("--rows", default="all", help="comma-separated row names or slugs, or all")
    p.add_argument("--data", type=Path, default=Path("../shared/data/scifact"))
    p.add_argument("--dev", type=Path, default=Path("runs/ts-scifact/dev"), help="held-out train queries (BEIR)")
    p.add_argument("--parallel", type=int, default=1, help="training runs at once on the device")
    p.add_argument("--minutes", type=float, default=None, help="stop each training run (resumably) after this")
    p.add_argument("--set", dest="extra", action="append", default=[], help="an override for every row")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--k", type=int, default=1000)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    rows = pick(a.rows)
    if a.stage == "train":
        train(rows, a.parallel, a.minutes, a.extra)
    elif a.stage == "encode":
        encode(rows, a.data, a.dev, a.device, a.dtype, a.batch_size, a.k)
    elif a.stage == "lookup":
        lookup(rows, a.data, a.dev, a.k, a.extra)
    elif a.stage == "ship":
        if len(rows) != 1:
            raise SystemExit("ship takes one row")
        ship(rows[0], a.alias, a.data)
    else:
        report(rows, a.data, a.dev, ROOT / "report.json", a.dense_model or None, a.k)


if __name__ == "__main__":
    main()
