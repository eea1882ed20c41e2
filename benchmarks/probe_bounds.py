"""How tight are doc-block upper bounds? The share of doc blocks that safe block-max pruning cannot skip.

    python -m benchmarks.probe_bounds --workload debian --docs 65536 --block-docs 8 32 128 [--bp-iters 8]

For the first ``--docs`` documents of a workload (``benchmarks.bench_index.load_workload``) and ``--queries`` of its
queries, in float arithmetic: each doc block's bound is the query's dot product with the block's per-term maxima
(as ``block_max_pruning`` computes it over impacts), and a block is *alive* at k when its bound is at least the
exact k-th best score: no safe algorithm over these bounds can skip it. Reported for the corpus order and for a
recursive graph bisection order (BP: Dhulipala et al., KDD 2016, with the log-gap cost; a plain numpy version,
the slow twin of a native one to come), with the seconds BP took. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from benchmarks.bench_index import VOCAB, load_workload
from benchmarks.report import grid


def _cost(d: np.ndarray, n: int) -> np.ndarray:
    return d * np.log2(n / (d + 1.0))


def bp_order(B: sp.csr_matrix, iters: int = 8, leaf: int = 16) -> np.ndarray:
    """Recursive graph bisection of the rows of a binary doc x term matrix: each segment is split in halves and
    documents are swapped between them, best move gains first, while a swap lowers the log-gap cost of both."""
    n = B.shape[0]
    perm = np.arange(n)
    segments = [(0, n)]
    while segments:
        nxt = []
        for a, z in segments:
            if z - a <= leaf:
                continue
            mid = (a + z) // 2
            docs = perm[a:z]
            Bs = B[docs]
            right = np.zeros(z - a, bool)
            right[mid - a :] = True
            for _ in range(iters):
                nl, nr = int((~right).sum()), int(right.sum())
                dl = np.asarray(Bs[~right].sum(0)).ravel()
                dr = np.asarray(Bs[right].sum(0)).ravel()
                base = _cost(dl, nl) + _cost(dr, nr)
                gain_l = Bs @ (base - (_cost(np.maximum(dl - 1, 0), nl) + _cost(dr + 1, nr)))  # left -> right
                gain_r = Bs @ (base - (_cost(dl + 1, nl) + _cost(np.maximum(dr - 1, 0), nr)))  # right -> left
                il, ir = np.flatnonzero(~right), np.flatnonzero(right)
                ol = il[np.argsort(-gain_l[il], kind="stable")]
                orr = ir[np.argsort(-gain_r[ir], kind="stable")]
                m = min(len(ol), len(orr))
                swaps = int(np.sum(gain_l[ol[:m]] + gain_r[orr[:m]] > 0))
                if swaps == 0:
                    break
                right[ol[:swaps]] = True
                right[orr[:swaps]] = False
            perm[a:z] = np.r_[docs[~right], docs[right]]
            nxt += [(a, mid), (mid, z)]
        segments = nxt
    return perm


def block_maxima(D: sp.csr_matrix, block_docs: int) -> sp.csr_matrix:
    """(doc blocks x terms): each term's largest weight in each block of ``block_docs`` consecutive rows."""
    coo = D.tocoo()
    nb = (D.shape[0] + block_docs - 1) // block_docs
    key = (coo.row // block_docs).astype(np.int64) * D.shape[1] + coo.col
    order = np.lexsort((coo.data, key))
    key, data = key[order], coo.data[order]
    last = np.r_[key[1:] != key[:-1], True]
    return sp.csr_matrix((data[last], (key[last] // D.shape[1], key[last] % D.shape[1])), shape=(nb, D.shape[1]))


def alive_share(D: sp.csr_matrix, queries: list[np.ndarray], block_docs: int, k: int) -> float:
    BM = block_maxima(D, block_docs)
    shares = []
    for q in queries:
        scores = D @ q
        if np.count_nonzero(scores) < k:
            shares.append(1.0)
            continue
        theta = np.partition(scores, -k)[-k]
        shares.append(float(np.mean(BM @ q >= theta)))
    return float(np.mean(shares))


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", default="debian", choices=["scifact", "debian", "synth1m"])
    ap.add_argument("--docs", type=int, default=65536)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--block-docs", nargs="+", type=int, default=[8, 32, 128])
    ap.add_argument("--k", nargs="+", type=int, default=[10, 1000])
    ap.add_argument("--bp-iters", type=int, default=8)
    ap.add_argument("--encoded", type=Path, default=Path(".cache/encoded"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/probe-bounds.json"))
    a = ap.parse_args(argv)
    w = load_workload(a.workload, a.encoded, a.queries, 1_000_000)
    n = min(a.docs, w.docs.num_rows)
    end = int(w.docs.indptr[n])
    D = sp.csr_matrix(
        (w.docs.values[:end].astype(np.float32), w.docs.indices[:end], w.docs.indptr[: n + 1].astype(np.int64)),
        shape=(n, VOCAB),
    )
    queries = []
    for i in range(w.queries.num_rows):
        t, v = w.queries.row(i)
        q = np.zeros(VOCAB, np.float32)
        np.add.at(q, t.astype(np.int64), v)
        queries.append(q)
    t0 = time.perf_counter()
    perm = bp_order((D > 0).astype(np.float32).tocsr(), iters=a.bp_iters)
    bp_s = time.perf_counter() - t0
    rows = []
    for order, M in (("corpus", D), ("bp", D[perm])):
        for b in a.block_docs:
            rec = {"workload": a.workload, "docs": n, "queries": len(queries), "order": order, "block_docs": b,
                   "bp_seconds": bp_s if order == "bp" else None}  # fmt: skip
            for k in a.k:
                rec[f"alive_at_{k}"] = alive_share(M, queries, b, k)
            rows.append(rec)
    head = ["order", "block docs", *[f"alive share at k={k}" for k in a.k]]
    print(f"{a.workload}: first {n:,} documents, {len(queries)} queries; BP took {bp_s:.1f} s")
    print(grid(head, [[r["order"], r["block_docs"], *[f"{r[f'alive_at_{k}']:.3f}" for k in a.k]] for r in rows]))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(rows, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
