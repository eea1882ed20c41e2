"""A dense head for the shipped LLM encoder, trained beside it frozen: which block to pool, and what it adds.

    python -m benchmarks.dense_head features --layers 0,10,26,28 --device cuda    (GPU machine, ~1 min a layer)
    python -m benchmarks.dense_head train    --layers 0,10,26,28                  (anywhere: CPU, a minute a layer)
    python -m benchmarks.dense_head report   --layers 0,10,26,28                  (anywhere)

``features`` adds an untrained head (``SparseEncoder.add_dense_head``: the mean of block L's hidden states, L = 0
for the last ones, projection = identity) to the sparse encoder (``--model``, default the shipped
``smollm2-splade``) and encodes the corpus and every query (the training set's, the dev and the test split's)
once per block: runs/dense-head/L<k>/{documents,queries}.safetensors (retrieval.vectors' format; dense rows
only, about 12 MB and 2.5 MB, so that a GPU machine's files come back under its 16 MB a file).

``train`` trains each block's projection on those rows (lsr.train.dense_head, configs/smollm2-splade-dense.toml)
into runs/dense-head/L<k>/model: the sparse encoder plus its dense head.

``report`` scores the dev and test queries against the corpus exactly with each head, untrained (identity) and
trained, alone and fused with the encoder's own sparse runs (runs/ablate/<--sparse-row>/{dev,test}.sparse.trec,
from benchmarks/ablate_llm.py), DBSF weight tuned on dev; the block is chosen on dev. It reads the trained
projection from the saved model and applies it to the cached rows, normalise(P normalise(x)) = normalise(P x);
the slow twin, the saved model itself encoding a few test queries on this machine, must give the same vectors.
Writes benchmarks/results/dense-head-smollm2.json and prints the table.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

ROOT = Path("runs/dense-head")
CONFIG = "configs/smollm2-splade-dense.toml"
DOCS, QUERIES = "documents.safetensors", "queries.safetensors"


def _empty_sparse(n: int):  # noqa: ANN202
    from indexer import SparseBatch

    return SparseBatch(np.zeros(n + 1, np.uint64), np.zeros(0, np.uint32), np.zeros(0, np.float32))


def _query_texts(data: Path, dev: Path, train: Path) -> list[str]:
    from benchmarks.ablate_llm import _split
    from lsr.train.data import TrainSet

    texts = {r["query"] for r in TrainSet.load(train).rows}
    for folder, split in ((dev, "dev"), (data, "test")):
        texts |= set(_split(folder, split)[0].values())
    return sorted(texts)


def features(model: str, layers: list[int], data: Path, dev: Path, train: Path, device: str, dtype: str,
             batch_size: int) -> None:  # fmt: skip
    from benchmarks.ablate_llm import _corpus
    from lsr import SparseEncoder
    from retrieval.vectors import write_vectors

    dids, texts = _corpus(data)
    q_texts = _query_texts(data, dev, train)
    for layer in layers:
        enc = SparseEncoder.from_pretrained(model, device=device, dtype=dtype).add_dense_head("mean", layer)
        D = enc.encode(texts, "document", batch_size=batch_size).dense
        Q = enc.encode(q_texts, "query", batch_size=batch_size).dense
        folder = ROOT / f"L{layer}"
        write_vectors(folder / DOCS, _empty_sparse(len(dids)), D, dids)
        write_vectors(folder / QUERIES, _empty_sparse(len(q_texts)), Q, q_texts)
        logger.info("block %d: %d documents, %d queries", layer, len(dids), len(q_texts))
        del enc


def _rows(path: Path) -> tuple[list[str], np.ndarray]:
    from retrieval.vectors import read_vectors

    ids, _, dense = read_vectors(path)
    if ids is None or dense is None:
        raise SystemExit(f"{path}: not a features file of this benchmark (ids and dense rows)")
    return list(ids), np.asarray(dense, dtype=np.float32)


def train(layers: list[int], extra: list[str]) -> None:
    from lsr.train.config import TrainConfig, parse_overrides
    from lsr.train.dense_head import DenseHeadTrainer

    for layer in layers:
        folder = ROOT / f"L{layer}"
        sets = [f"model.settings.dense_layer={layer}", f"run.out={folder}", *extra]
        trainer = DenseHeadTrainer(TrainConfig.load(CONFIG, parse_overrides(sets)))
        trainer.train(show_progress=False, documents=_rows(folder / DOCS), queries=_rows(folder / QUERIES))


def _projection(model: Path) -> np.ndarray:
    from safetensors.numpy import load_file

    from lsr.sparse_encoder import WEIGHTS_NAME

    return load_file(str(model / WEIGHTS_NAME))["dense_proj.weight"].astype(np.float32)


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def check_twin(model: Path, q_texts: list[str], Q: np.ndarray, P: np.ndarray) -> float:
    """The saved model's own dense vectors of a few queries against normalise(P row): the largest difference."""
    from lsr import SparseEncoder

    enc = SparseEncoder.from_pretrained(model)
    got = enc.encode(q_texts, "query").dense
    return float(np.abs(got - _normalise(Q @ P.T)).max())


def report(layers: list[int], data: Path, dev: Path, sparse_row: str, out: Path, k: int = 1000) -> list[dict]:
    from benchmarks.ablate_llm import ROOT as ABLATE
    from benchmarks.ablate_llm import _hybrid, _split, _topk_run
    from benchmarks.report import grid as table
    from eval import metrics
    from retrieval import trec

    splits = {"dev": _split(dev, "dev"), "test": _split(data, "test")}
    qrels = {s: v[1] for s, v in splits.items()}
    measures = ("nDCG@10", "R@100")
    sparse = {(s, "sparse"): trec.read_run(ABLATE / sparse_row / f"{s}.sparse.trec") for s in splits}
    results = []
    for layer in layers:
        folder = ROOT / f"L{layer}"
        dids, D = _rows(folder / DOCS)
        q_texts, Q = _rows(folder / QUERIES)
        at = {t: i for i, t in enumerate(q_texts)}
        rec: dict = {"layer": layer}
        heads = {"untrained": np.eye(D.shape[1], dtype=np.float32)}
        if (folder / "model").is_dir():
            heads["trained"] = _projection(folder / "model")
            log = [json.loads(x) for x in (folder / "log.jsonl").read_text().splitlines()]
            rec["train_steps"] = log[-1]["step"]
            test_texts = list(splits["test"][0].values())[:4]
            rows = Q[[at[t] for t in test_texts]]
            rec["twin_max_abs_diff"] = check_twin(folder / "model", test_texts, rows, heads["trained"])
        for head, P in heads.items():
            Dp = _normalise(D @ P.T)
            runs = dict(sparse)
            for split, (queries, _) in splits.items():
                qids = list(queries)
                Qp = _normalise(Q[[at[queries[q]] for q in qids]] @ P.T)
                runs[split, "dense"] = _topk_run(Qp @ Dp.T, qids, dids, k)
                for m, v in metrics.evaluate(runs[split, "dense"], qrels[split], measures).items():
                    rec[f"{head}_{split}_dense_{m}"] = v
            hybrid = _hybrid(runs, qrels, "sparse", "dense", "hybrid", measures)
            rec.update({f"{head}_{key}": v for key, v in hybrid.items()})
        if (folder / "model").is_dir():
            trec.write_run(folder / "test.dense.trec", runs["test", "dense"], "dense")
        results.append(rec)
    sparse_scores = {f"{s}_{m}": v for s in splits
                     for m, v in metrics.evaluate(sparse[s, "sparse"], qrels[s], measures).items()}  # fmt: skip

    def f(x: float | None) -> str:
        return "—" if x is None else f"{x:.4f}"

    head = ["block", "untrained dense dev", "untrained dense test", "dense dev", "dense test", "dense test R@100",
            "hybrid dev", "hybrid test", "hybrid test R@100", "dense weight"]  # fmt: skip
    body = [[str(r["layer"] or "last"), f(r.get("untrained_dev_dense_nDCG@10")),
             f(r.get("untrained_test_dense_nDCG@10")), f(r.get("trained_dev_dense_nDCG@10")),
             f(r.get("trained_test_dense_nDCG@10")), f(r.get("trained_test_dense_R@100")),
             f(r.get("trained_dev_hybrid_nDCG@10")), f(r.get("trained_test_hybrid_nDCG@10")),
             f(r.get("trained_test_hybrid_R@100")), f(r.get("trained_hybrid_dense_weight"))]
            for r in results]  # fmt: skip
    print(table(head, body))  # noqa: T201 - a benchmark prints its table
    print(
        f"sparse alone ({sparse_row}): dev nDCG@10 {sparse_scores['dev_nDCG@10']:.4f}, "  # noqa: T201
        f"test {sparse_scores['test_nDCG@10']:.4f}"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"sparse_row": sparse_row, "sparse": sparse_scores, "blocks": results}, indent=2) + "\n")
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.dense_head", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("stage", choices=["features", "train", "report"])
    ap.add_argument("--layers", default="0,10,26,28", help="blocks to pool, comma-separated (0: the last states)")
    ap.add_argument("--model", default="smollm2-splade")
    ap.add_argument("--data", type=Path, default=Path("../shared/data/scifact"))
    ap.add_argument("--dev", type=Path, default=Path("runs/ts-scifact/dev"))
    ap.add_argument("--train-set", type=Path, default=Path("runs/ts-scifact/set"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--sparse-row", default="real-800-steps", help="the ablation row whose sparse runs are fused")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="train: overrides")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/dense-head-smollm2.json"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    layers = [int(x) for x in args.layers.split(",") if x.strip()]
    if args.stage == "features":
        dtype = args.dtype if args.device.startswith("cuda") else "float32"
        features(args.model, layers, args.data, args.dev, args.train_set, args.device, dtype, args.batch_size)
    elif args.stage == "train":
        train(layers, args.set)
    else:
        report(layers, args.data, args.dev, args.sparse_row, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
