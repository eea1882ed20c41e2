"""Probes behind the round-3 notes on the SmolLM2 encoder (README, "The LLM encoder"), all on the CPU:

    python -m benchmarks.probe_smollm2 [--trained runs/ablate/long-pseudo/model] [--out FILE]

1. lexical baselines over SmolLM2's own tokens on scifact dev (the held-out train queries) and test: binary IDF
   (score = sum of idf^2 over shared tokens), BM25 (k1 0.9, b 0.4), and BM25 with case and leading-space variants
   of a token merged;
2. the untrained encoder's max-pooled LM-head logits (echo) over 8 scifact passages: how many entries are above
   10, 15, 20, where the passage's own tokens sit, and how many entries and own tokens stay positive under a
   shift of the logits (the head-bias start);
3. the first batch's losses of the round-2 and round-3 starting points (2 queries x 3 passages, 128 tokens);
4. with ``--trained``, that model's encoding speed on this CPU (documents a second, 40 scifact passages).
Prints each and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

DATA = Path(__file__).resolve().parents[2] / "shared/data/scifact"


def lexical(enc, data: Path, dev: Path) -> dict:  # noqa: ANN001
    from eval import metrics
    from retrieval.corpus import find, read_docs, read_qrels, read_queries

    docs = list(read_docs(find(data, "corpus")))
    dids, V = [d.id for d in docs], enc.vocab_size
    vocab = enc.tokenizer.convert_ids_to_tokens(list(range(V)))
    first: dict[str, int] = {}
    canon = np.arange(V)
    for i, t in enumerate(vocab):
        key = (t or "").replace("\u0120", "").lower()
        canon[i] = first.setdefault(key, i) if key else i

    def counts(rows: list[list[int]]) -> sp.csr_matrix:
        r, c, v = [], [], []
        for i, ids in enumerate(rows):
            u, n = np.unique(np.asarray(ids, dtype=np.int64), return_counts=True)
            r += [i] * len(u)
            c += u.tolist()
            v += n.tolist()
        return sp.csr_matrix((np.asarray(v, np.float32), (r, c)), shape=(len(rows), V))

    out = {}
    doc_tokens = enc.layout.tokenize([d.text for d in docs])
    for variant, mapping in (("tokens", None), ("merged variants", canon)):
        D = counts(
            [ids if mapping is None else mapping[np.asarray(ids, dtype=np.int64)].tolist() for ids in doc_tokens]
        )
        idf = np.log((D.shape[0] + 1) / (np.asarray((D > 0).sum(0)).ravel() + 1))
        lens = np.asarray(D.sum(1)).ravel()
        C = D.tocoo()
        tf = C.data * 1.9 / (C.data + 0.9 * (0.6 + 0.4 * lens[C.row] / lens.mean()))
        weighted = {"binary IDF": (D > 0).astype(np.float32).multiply(idf).tocsr(),
                    "BM25": sp.csr_matrix((tf, (C.row, C.col)), shape=D.shape)}  # fmt: skip
        for split, folder in (("dev", dev), ("test", data)):
            qrels = read_qrels(folder / "qrels" / f"{split}.tsv")
            texts = read_queries(find(folder, "queries"))
            qids = [q for q in qrels if q in texts]
            q_tokens = enc.layout.tokenize([texts[q] for q in qids])
            Q = counts(
                [ids if mapping is None else mapping[np.asarray(ids, dtype=np.int64)].tolist() for ids in q_tokens]
            )
            Q = (Q > 0).astype(np.float32).multiply(idf).tocsr()
            for name, W in weighted.items():
                if mapping is not None and name != "BM25":
                    continue
                S = (Q @ W.T).toarray()
                run = {q: {dids[j]: float(S[i, j]) for j in np.argsort(-S[i])[:100]} for i, q in enumerate(qids)}
                out[f"{split} {name} ({variant})"] = metrics.evaluate(run, qrels, ("nDCG@10", "R@100"))
    return out


def logits(enc, data: Path) -> dict:  # noqa: ANN001
    import torch

    from lsr import pooling
    from retrieval.corpus import find, read_docs

    texts = [d.text for d in list(read_docs(find(data, "corpus")))[:8]]
    b = enc.layout.batch(enc.layout.tokenize(texts), 512)
    with torch.no_grad():
        m = pooling.max_logits(enc.backbone.body(b.input_ids, b.attention_mask), b.keep, enc.backbone.head,
                               enc.vocab_size, 64).numpy()  # fmt: skip
    own = [np.unique(b.input_ids[i][b.keep[i]].numpy()) for i in range(len(texts))]
    res = {f"entries above {c}": float(np.mean([(m[i] > c).sum() for i in range(len(texts))])) for c in (10, 15, 20)}
    res["own tokens: median logit"] = float(np.median(np.concatenate([m[i][own[i]] for i in range(len(texts))])))
    for shift in (22, 24, 26, 28, 30):
        res[f"shift {shift}: entries left"] = float(np.mean([(m[i] > shift).sum() for i in range(len(texts))]))
        res[f"shift {shift}: own tokens kept"] = float(
            np.mean([(m[i][own[i]] > shift).mean() for i in range(len(texts))])
        )
    return res


def first_losses() -> dict:
    from benchmarks.ablate_llm import CONFIG, ROWS
    from lsr.train.config import TrainConfig, parse_overrides
    from lsr.train.trainer import Trainer

    out = {}
    small = ["run.device=cpu", "data.batch_size=2", "data.group_size=3", "model.settings.max_length=128",
             "run.out=/tmp/probe-smollm2", "model.gradient_checkpointing=true"]  # fmt: skip
    for row in ("long, +pseudo", "idf start, +pseudo", "idf + head bias start"):
        tr = Trainer(TrainConfig.load(CONFIG, parse_overrides(ROWS[row] + small)))
        _, batch = next(tr.data.batches(0, 0, 0, 2, 3, 30))
        _, stats = tr.loss(batch, 0)
        out[row] = {"infonce": stats["infonce"], "kl": stats["kl"]}
    return out


def speed(folder: str, data: Path) -> dict:
    from lsr import SparseEncoder
    from retrieval.corpus import find, read_docs

    enc = SparseEncoder.from_pretrained(folder)
    texts = [d.text for d in list(read_docs(find(data, "corpus")))[:48]]
    enc.encode(texts[:8], batch_size=8)
    t0 = time.perf_counter()
    enc.encode(texts[8:], batch_size=8)
    return {"model": folder, "docs_per_s": 40 / (time.perf_counter() - t0), "batch_size": 8}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--dev", type=Path, default=Path("runs/ts-scifact/dev"))
    p.add_argument("--trained", default=None, help="a trained SmolLM2 encoder folder: its CPU encoding speed")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/probe-smollm2.json"))
    a = p.parse_args(argv)
    import os
    import platform

    from lsr import SparseEncoder

    enc = SparseEncoder.from_pretrained("smollm2-135m", echo=True)
    report = {"machine": platform.machine(), "cores": os.cpu_count(), "lexical": lexical(enc, a.data, a.dev),
              "logits": logits(enc, a.data), "first_losses": first_losses()}  # fmt: skip
    if a.trained:
        report["cpu_speed"] = speed(a.trained, a.data)
    print(json.dumps(report, indent=2))  # noqa: T201
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
