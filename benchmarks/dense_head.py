"""A dense head for the shipped LLM encoder, trained beside it frozen: which block to pool, and what it adds.

    python -m benchmarks.dense_head probe    --model smollm2-splade               (anywhere: CPU, 3 minutes)
    python -m benchmarks.dense_head features --layers 0,10,26,28 --device cuda    (GPU machine, ~1 min a layer;
                                                                                  80 min a layer on 2 CPU cores)
    python -m benchmarks.dense_head train    --layers 0,10,26,28                  (anywhere: CPU, a minute a layer)
    python -m benchmarks.dense_head report   --layers 0,10,26,28                  (anywhere)
    python -m benchmarks.dense_head ship     --layers 28                          (the chosen block's head)

``probe`` picks the block on training data only: for the first 60 training queries (by id) it ranks their
positives among 300 other training documents by the cosine of mean-pooled hidden states, untrained, for every
other block, and prints the mean reciprocal rank per block (benchmarks/results/dense-probe-<model>.json).

``features`` adds an untrained head (``SparseEncoder.add_dense_head``: the mean of block L's hidden states, L = 0
for the last ones, projection = identity) to the sparse encoder (``--model``, default the shipped
``smollm2-splade``) and encodes the corpus and every query (the training set's, the dev and the test split's)
once per block: runs/dense-head/L<k>/{documents,queries}.safetensors (retrieval.vectors' format; dense rows
only, about 12 MB and 2.5 MB, so that a GPU machine's files come back under its 16 MB a file).

``train`` trains each block's projection on those rows (lsr.train.dense_head, configs/smollm2-splade-dense.toml,
``--set`` overrides) into runs/dense-head/L<k>/<--head>/model: the sparse encoder plus its dense head. Name
each setting tried (``--head lr3e-3 --set optim.lr=3e-3``); the report shows them all, to choose on dev.

``report`` scores the dev and test queries against the corpus exactly with each block's heads, untrained
(identity) and trained, alone and fused with the encoder's own sparse runs (runs/ablate/<--sparse-row>/
{dev,test}.sparse.trec, from benchmarks/ablate_llm.py), DBSF weight tuned on dev. It applies each saved
projection to the cached rows: normalise(P normalise(x)) = normalise(P x). Writes
benchmarks/results/dense-head-smollm2.json and prints the table.

``ship`` checks the chosen head against its slow twin (the saved model itself encodes four test queries here, in
float32: its vectors must be the rows' through P, within 0.02) and puts it into the shipped encoder
(lsr/weights/<--model>: its configuration and weights file, now with the projection; the sparse weights are checked
to be the same tensors) with this stage's run.json, log.jsonl and config under training/dense-head/, and adds the
head's test scores, its hybrid's and a few test queries' top documents with their cosines to
eval/expected/scifact-<--model>.json, which tests/test_regression_smollm2.py re-encodes on the CPU.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from benchmarks.ablate_llm import load_dense

logger = logging.getLogger(__name__)

ROOT = Path("runs/dense-head")
CONFIG = "configs/smollm2-splade-dense.toml"
DOCS, QUERIES = "documents.safetensors", "queries.safetensors"


def _query_texts(data: Path, dev: Path, train: Path) -> list[str]:
    from benchmarks.ablate_llm import _split
    from lsr.train.data import TrainSet

    texts = {r["query"] for r in TrainSet.load(train).rows}
    for folder, split in ((dev, "dev"), (data, "test")):
        texts |= set(_split(folder, split)[0].values())
    return sorted(texts)


def probe(model: str, train: Path, queries: int = 60, others: int = 300, seed: int = 0) -> dict[str, float]:
    """MRR of each block's mean-pooled hidden states (cosine), untrained, on training queries only."""
    import torch

    from lsr import SparseEncoder, pooling
    from lsr.train.data import TrainSet

    data = TrainSet.load(train)
    rows = sorted(data.rows, key=lambda r: r["qid"])[:queries]
    positives = {r["qid"]: {d for d, lab in zip(r["doc_ids"], r["label"]) if lab} for r in rows}
    pos = sorted(set().union(*positives.values()))
    rest = sorted(set(data.docs) - set(pos))
    docs = pos + [rest[i] for i in np.random.default_rng(seed).choice(len(rest), others, replace=False)]
    enc = SparseEncoder.from_pretrained(model)
    inner = enc.backbone.lm.get_decoder() if enc.config.kind == "causal" else enc.backbone.lm.base_model

    def pooled(texts: list[str], side: str) -> dict[int, np.ndarray]:
        out: dict[int, list[np.ndarray]] = {}
        with torch.inference_mode():
            for i in range(0, len(texts), 16):
                b = enc.layout.batch(enc.layout.tokenize(texts[i : i + 16]), enc.max_length_for(side))
                position_ids = (b.attention_mask.long().cumsum(-1) - 1).clamp(min=0)
                hs = inner(input_ids=b.input_ids, attention_mask=b.attention_mask, position_ids=position_ids,
                           use_cache=False, output_hidden_states=True).hidden_states  # fmt: skip
                for layer in range(1, len(hs)):  # the last entry: the last hidden states (after the final norm)
                    key = 0 if layer == len(hs) - 1 else layer
                    out.setdefault(key, []).append(_normalise(pooling.mean_pool(hs[layer].float(), b.keep).numpy()))
        return {k: np.concatenate(v) for k, v in out.items()}

    D = pooled([data.docs[d] for d in docs], "document")
    Q = pooled([r["query"] for r in rows], "query")
    mrr = {}
    for layer in sorted(D):
        S = Q[layer] @ D[layer].T
        rr = []
        for i, r in enumerate(rows):
            order = np.argsort(-S[i])
            rr.append(1.0 / (1 + next(k for k, j in enumerate(order) if docs[j] in positives[r["qid"]])))
        mrr[str(layer)] = float(np.mean(rr))
    return mrr


def features(model: str, layers: list[int], data: Path, dev: Path, train: Path, device: str, dtype: str,
             batch_size: int) -> None:  # fmt: skip
    from benchmarks.ablate_llm import _corpus, save_dense
    from lsr import SparseEncoder

    dids, texts = _corpus(data)
    q_texts = _query_texts(data, dev, train)
    for layer in layers:
        enc = SparseEncoder.from_pretrained(model, device=device, dtype=dtype).add_dense_head("mean", layer)
        D = enc.encode(texts, "document", batch_size=batch_size, show_progress=True).dense
        Q = enc.encode(q_texts, "query", batch_size=batch_size, show_progress=True).dense
        folder = ROOT / f"L{layer}"
        save_dense(folder / DOCS, dids, D)
        save_dense(folder / QUERIES, q_texts, Q)
        logger.info("block %d: %d documents, %d queries", layer, len(dids), len(q_texts))
        del enc


def train(layers: list[int], extra: list[str], head: str) -> None:
    from lsr.train.config import TrainConfig, parse_overrides
    from lsr.train.dense_head import DenseHeadTrainer

    for layer in layers:
        folder = ROOT / f"L{layer}"
        sets = [f"model.settings.dense_layer={layer}", f"run.out={folder / head}", *extra]
        trainer = DenseHeadTrainer(TrainConfig.load(CONFIG, parse_overrides(sets)))
        trainer.train(show_progress=False, documents=load_dense(folder / DOCS), queries=load_dense(folder / QUERIES))


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
    """Every block's untrained head and each head trained on it (ROOT/L<k>/<head>/model), dev and test."""
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
        dids, D = load_dense(folder / DOCS)
        q_texts, Q = load_dense(folder / QUERIES)
        at = {t: i for i, t in enumerate(q_texts)}
        heads = {"untrained": np.eye(D.shape[1], dtype=np.float32)}
        for model in sorted(folder.glob("*/model")):
            heads[model.parent.name] = _projection(model)
        for head, P in heads.items():
            rec: dict = {"layer": layer, "head": head}
            if head != "untrained":
                run_info = json.loads((folder / head / "run.json").read_text())
                rec["optim"] = {x: run_info["config"]["optim"][x] for x in ("lr", "epochs", "max_steps")}
                rec["train_steps"] = run_info["total_steps"]
            Dp = _normalise(D @ P.T)
            runs = dict(sparse)
            for split, (queries, _) in splits.items():
                qids = list(queries)
                Qp = _normalise(Q[[at[queries[q]] for q in qids]] @ P.T)
                runs[split, "dense"] = _topk_run(Qp @ Dp.T, qids, dids, k)
                for m, v in metrics.evaluate(runs[split, "dense"], qrels[split], measures).items():
                    rec[f"{split}_dense_{m}"] = v
            rec.update(_hybrid(runs, qrels, "sparse", "dense", "hybrid", measures))
            if head != "untrained":
                trec.write_run(folder / head / "test.dense.trec", runs["test", "dense"], "dense")
            results.append(rec)
    sparse_scores = {f"{s}_{m}": v for s in splits
                     for m, v in metrics.evaluate(sparse[s, "sparse"], qrels[s], measures).items()}  # fmt: skip

    def f(x: float | None) -> str:
        return "—" if x is None else f"{x:.4f}"

    head = ["block", "head", "dense dev", "dense test", "dense test R@100", "hybrid dev", "hybrid test",
            "hybrid test R@100", "dense weight"]  # fmt: skip
    body = [[str(r["layer"] or "last"), r["head"], f(r["dev_dense_nDCG@10"]), f(r["test_dense_nDCG@10"]),
             f(r["test_dense_R@100"]), f(r["dev_hybrid_nDCG@10"]), f(r["test_hybrid_nDCG@10"]),
             f(r["test_hybrid_R@100"]), f(r["hybrid_dense_weight"])] for r in results]  # fmt: skip
    print(table(head, body))  # noqa: T201 - a benchmark prints its table
    print(
        f"sparse alone ({sparse_row}): dev nDCG@10 {sparse_scores['dev_nDCG@10']:.4f}, "  # noqa: T201
        f"test {sparse_scores['test_nDCG@10']:.4f}"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"sparse_row": sparse_row, "sparse": sparse_scores, "heads": results}, indent=2) + "\n")
    return results


PAIRS_QUERIES, PAIRS_DOCS = 4, 3


def ship(layer: int, head: str, alias: str, data: Path, results: Path) -> Path:
    import shutil

    from safetensors.numpy import load_file

    from benchmarks.ablate_llm import _split
    from eval import metrics
    from indexer.atomic import staged, write_bytes
    from lsr.config import CONFIG_NAME
    from lsr.models import SHIPPED, WEIGHTS_DIR
    from lsr.sparse_encoder import WEIGHTS_NAME
    from retrieval import trec

    if alias not in SHIPPED:
        raise SystemExit(f"{alias!r} is not a shipped model (lsr.models.SHIPPED)")
    folder, target = ROOT / f"L{layer}" / head, WEIGHTS_DIR / SHIPPED[alias]
    model = folder / "model"
    rec = next((r for r in json.loads(results.read_text())["heads"] if (r["layer"], r["head"]) == (layer, head)), None)
    if not model.is_dir() or rec is None:
        raise SystemExit(f"block {layer}, head {head}: train it and run the report first ({model}, {results})")
    q_texts, Q = load_dense(ROOT / f"L{layer}" / QUERIES)
    test_texts = sorted(set(_split(data, "test")[0].values()))[:4]
    at = {t: i for i, t in enumerate(q_texts)}
    twin = check_twin(model, test_texts, Q[[at[t] for t in test_texts]], _projection(model))
    if twin > 0.02:  # bfloat16 rows against the float32 model: a few thousandths
        raise SystemExit(f"{model}: its own dense vectors differ from the rows' by {twin:.4f}; refusing to ship")
    new, old = load_file(str(model / WEIGHTS_NAME)), load_file(str(target / WEIGHTS_NAME))
    if set(new) - set(old) != {"dense_proj.weight"} or any(not np.array_equal(new[k], old[k]) for k in old):
        raise SystemExit(f"{model}: its sparse weights are not those of {target}; refusing to mix them")
    with staged(target, overwrite=True) as work:
        shutil.copytree(target, work, dirs_exist_ok=True)
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            shutil.copy2(model / name, work / name)
        (work / "training" / "dense-head").mkdir(exist_ok=True)
        for f in (folder / "run.json", folder / "log.jsonl", Path(CONFIG)):  # the config's overrides: run.json
            shutil.copy2(f, work / "training" / "dense-head" / f.name)
    qrels = _split(data, "test")[1]
    run = trec.read_run(folder / "test.dense.trec")
    qids = sorted(run)[:PAIRS_QUERIES]
    path = Path("eval/expected") / f"scifact-{alias}.json"
    expected = json.loads(path.read_text())
    expected["scores"]["dense"] = metrics.evaluate(run, qrels, ("nDCG@10", "R@100", "R@1000", "RR@10"))
    expected["scores"]["hybrid"] = {m: rec[f"test_hybrid_{m}"] for m in ("nDCG@10", "R@100")}
    expected["hybrid_dense_weight"] = rec["hybrid_dense_weight"]
    expected["dense_twin_max_abs_diff"] = twin
    expected["pairs"]["dense"] = {q: dict(sorted(run[q].items(), key=lambda x: -x[1])[:PAIRS_DOCS]) for q in qids}
    expected["dense_made_by"] = (f"python -m benchmarks.dense_head features/train/report --layers {layer}, then "
                                 f"ship --layers {layer} --head {head} (features in bfloat16 on a CPU)")  # fmt: skip
    write_bytes(path, (json.dumps(expected, indent=2) + "\n").encode())
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.dense_head", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("stage", choices=["probe", "features", "train", "report", "ship"])
    ap.add_argument("--layers", default="0,10,26,28", help="blocks to pool, comma-separated (0: the last states)")
    ap.add_argument("--model", default="smollm2-splade")
    ap.add_argument("--data", type=Path, default=Path("../shared/data/scifact"))
    ap.add_argument("--dev", type=Path, default=Path("runs/ts-scifact/dev"))
    ap.add_argument("--train-set", type=Path, default=Path("runs/ts-scifact/set"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--dtype",
        default="bfloat16",
        help="features: bfloat16 (about 0.9 s a passage on 2 CPU cores, "
        "against 1.4 in float32; the dense vectors agree to a cosine of 0.997)",
    )
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--sparse-row", default="real-800-steps", help="the ablation row whose sparse runs are fused")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="train: overrides")
    ap.add_argument("--head", default="head", help="train / ship: the trained head's name (runs/dense-head/L<k>/NAME)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/dense-head-smollm2.json"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    layers = [int(x) for x in args.layers.split(",") if x.strip()]
    if args.stage == "probe":
        from benchmarks.report import grid as table

        mrr = probe(args.model, args.train_set)
        print(table(["block", "MRR (60 training queries, 300 other documents)"],  # noqa: T201
                    [[("last" if k == "0" else k), f"{v:.3f}"] for k, v in mrr.items()]))  # fmt: skip
        path = args.out.with_name(f"dense-probe-{args.model}.json")
        path.write_text(json.dumps({"model": args.model, "mrr": mrr}, indent=2) + "\n")
    elif args.stage == "features":
        features(args.model, layers, args.data, args.dev, args.train_set, args.device, args.dtype, args.batch_size)
    elif args.stage == "train":
        train(layers, args.set, args.head)
    elif args.stage == "report":
        report(layers, args.data, args.dev, args.sparse_row, args.out)
    else:
        if len(layers) != 1:
            raise SystemExit("ship: name one block (--layers K)")
        logger.info("scores in %s", ship(layers[0], args.head, args.model, args.data, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
