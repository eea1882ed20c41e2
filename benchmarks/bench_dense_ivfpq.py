"""The memory-mapped IVF-PQ dense index against exact search, on a collection's own dense vectors.

    python -m benchmarks.bench_dense_ivfpq --collection runs/scifact --queries ../shared/data/scifact/queries.jsonl.gz

Takes the flat rows of ``COLLECTION/dense.faiss`` (built with ``--dense-index flat``), builds the ``ivfpq`` index
``lsr index --dense-index ivfpq`` would (``retrieval.collection.new_dense_index``: IVF-PQ candidates re-ranked by
the exact rows), writes it and opens it memory-mapped, then searches the queries (the collection's dense model)
at several ``nprobe``, with and without the exact re-ranking. Reported: recall@10 against exact inner product,
ms per query (one batch, all cores), and file sizes. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.report import grid


def main(argv: list[str] | None = None) -> dict:
    import faiss

    from retrieval.collection import COLLECTION, DENSE, IVFPQ_K_FACTOR, new_dense_index
    from retrieval.corpus import read_queries
    from retrieval.encoders import Encoders

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collection", type=Path, required=True)
    ap.add_argument("--queries", type=Path, required=True)
    ap.add_argument("--n", type=int, default=1000, help="queries")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/dense-ivfpq-scifact.json"))
    args = ap.parse_args(argv)
    meta = json.loads((args.collection / COLLECTION).read_text())
    flat = faiss.read_index(str(args.collection / DENSE))
    rows = faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * flat.d).reshape(flat.ntotal, flat.d).copy()
    texts = list(read_queries(args.queries).values())[: args.n]
    q = Encoders().dense(meta["job"]["dense_model"]).encode_queries(texts)
    exact = np.argsort(-(q @ rows.T), axis=1)[:, :10]
    index = new_dense_index(rows.shape[1], "ivfpq", rows=len(rows))
    t0 = time.perf_counter()
    index.train(rows)
    index.add(rows)
    build_s = time.perf_counter() - t0
    path = Path(tempfile.mkdtemp()) / "ivfpq.faiss"
    faiss.write_index(index, str(path))
    mapped = faiss.read_index(str(path), faiss.IO_FLAG_MMAP)
    base = faiss.downcast_index(mapped.base_index)
    out = []
    for nprobe in (1, 4, 8, 16, 32, 64):
        for k_factor in (1.0, IVFPQ_K_FACTOR):
            params = faiss.IndexRefineSearchParameters(
                k_factor=k_factor, base_index_params=faiss.SearchParametersIVF(nprobe=nprobe)
            )
            t0 = time.perf_counter()
            _, got = mapped.search(q, 10, params=params)
            ms = (time.perf_counter() - t0) / len(q) * 1e3
            rec = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, exact)]))
            out.append({"nprobe": nprobe, "k_factor": k_factor, "recall@10": rec, "ms_per_query": ms})
    res = {
        "collection": str(args.collection), "docs": int(flat.ntotal), "dim": int(flat.d), "queries": len(q),
        "nlist": int(base.nlist), "code_bytes": int(base.code_size), "ivfpq_file_bytes": path.stat().st_size,
        "flat_file_bytes": (args.collection / DENSE).stat().st_size, "build_s": build_s, "rows": out,
        "cpus": os.cpu_count(),
    }  # fmt: skip
    print(f"\n{res['docs']:,} vectors of {res['dim']} dims, {res['queries']} queries; nlist {res['nlist']}, "
          f"{res['code_bytes']} code bytes a vector; file {res['ivfpq_file_bytes'] / 1e6:.1f} MB "
          f"(flat {res['flat_file_bytes'] / 1e6:.1f} MB)\n")  # fmt: skip
    print(grid(["nprobe", "exact re-rank", "recall@10", "ms/query"],
               [[r["nprobe"], f"{r['k_factor']:g}x" if r["k_factor"] > 1 else "none", f"{r['recall@10']:.4f}",
                 f"{r['ms_per_query']:.3f}"] for r in out]))  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    return res


if __name__ == "__main__":
    main()
