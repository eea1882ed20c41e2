"""Recall against latency: our exact search and its approximate knobs beside BMP and Seismic at several settings.

    python -m benchmarks.bench_tradeoff --workload scifact debian [--queries 1000]

SPLADE-tiny vectors (``benchmarks.encoded``; workloads as in ``bench_index``). The truth is exact float scoring
(SciPy). Every point searches every query one at a time on one thread and reports recall@10 (and @1000) against
that truth and mean / p99 latency at k=10 (and 1000). Points:

- ours: exhaustive (exact over 8-bit impacts); query term pruning (``prune_terms``, weight share 0.95 / 0.9 / 0.8 /
  0.7); static pruning at build time (``doc_mass`` 0.9 / 0.8 / 0.7);
- BMP: block sizes 8, 16 and 32 at alpha = beta = 1 (safe over the same impacts), and block 16 at alpha 0.9 / 0.8;
- Seismic: ``query_cut`` 5 / 10 / 20 x ``heap_factor`` 0.7 / 0.9 (one index, its default build).

Documents are in corpus order for every engine (no reordering). Prints a table per workload, writes JSON and a PNG
per workload (recall@10 against mean latency, log scale) next to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # Seismic and BMP would take every core otherwise

import numpy as np  # noqa: E402

from benchmarks.bench_index import VOCAB, Workload, dir_bytes, load_workload  # noqa: E402
from benchmarks.report import grid  # noqa: E402
from indexer import Index, IndexBuilder, SparseBatch  # noqa: E402
from indexer.csr import prune_terms  # noqa: E402
from indexer.reference import canonical_reference, quantize  # noqa: E402

Search = Callable[[int, int], list[int]]  # (query number, k) -> doc numbers


def truth(w: Workload, k: int) -> list[list[int]]:
    import scipy.sparse as sp

    rows = np.repeat(np.arange(w.docs.num_rows), np.diff(w.docs.indptr.astype(np.int64)))
    csc = sp.csc_matrix((w.docs.values.astype(np.float64), (rows, w.docs.indices)), shape=(w.docs.num_rows, VOCAB))
    out = []
    for i in range(w.queries.num_rows):
        t, v = w.queries.row(i)
        s = np.asarray(csc[:, t.astype(np.int64)] @ v.astype(np.float64)).ravel()
        top = np.flatnonzero(s > 0)
        out.append(top[np.lexsort((top, -s[top]))][:k].tolist())
    return out


def ours(w: Workload, tmp: Path, doc_mass: float | None = None, query_mass: float | None = None):  # noqa: ANN201
    path = tmp / f"ours-{doc_mass}"
    if not path.exists():
        with IndexBuilder(path, vocab_size=VOCAB, doc_mass=doc_mass) as b:
            for lo in range(0, w.docs.num_rows, 100_000):
                hi = min(lo + 100_000, w.docs.num_rows)
                a, z = int(w.docs.indptr[lo]), int(w.docs.indptr[hi])
                b.add(w.doc_ids[lo:hi], SparseBatch(w.docs.indptr[lo : hi + 1] - w.docs.indptr[lo],
                                                    w.docs.indices[a:z], w.docs.values[a:z]))  # fmt: skip
    ix = Index.open(path)
    qs = [prune_terms(*w.queries.row(i), mass=query_mass) for i in range(w.queries.num_rows)]
    batches = [SparseBatch(np.array([0, len(t)], np.uint64), t, v) for t, v in qs]

    def search(qi: int, k: int) -> list[int]:
        r = ix.search_batch(batches[qi], k=k, threads=1)
        return r.docs[0, : r.counts[0]].tolist()

    return search, ix.postings_bytes


def bmp_engine(w: Workload, impacts: np.ndarray, tmp: Path, bsize: int, alpha: float):  # noqa: ANN201
    import bmp

    path = tmp / f"bmp-{bsize}.bmp"
    if not path.exists():
        ix = bmp.Indexer(str(path), bsize=bsize, compress_range=False)
        ind, ptr = w.docs.indices, w.docs.indptr
        for i in range(w.docs.num_rows):
            a, z = int(ptr[i]), int(ptr[i + 1])
            ix.add_document(str(i), dict(zip(map(str, ind[a:z].tolist()), impacts[a:z].tolist())))
        ix.finish()
    s = bmp.Searcher(str(path))
    queries = [{str(a): max(1, int(round(b * 1000))) for a, b in zip(*(x.tolist() for x in w.queries.row(i)))}
               for i in range(w.queries.num_rows)]  # fmt: skip

    def search(qi: int, k: int) -> list[int]:
        docnos, _ = s.search(queries[qi], k=k, alpha=alpha, beta=alpha)
        return [int(d) for d in docnos]

    return search, dir_bytes(path)


class SeismicIndex:
    def __init__(self, w: Workload, tmp: Path) -> None:
        import seismic

        self.st = seismic.get_seismic_string()
        ds = seismic.SeismicDataset()
        ind, ptr = w.docs.indices, w.docs.indptr
        for i in range(w.docs.num_rows):
            a, z = int(ptr[i]), int(ptr[i + 1])
            ds.add_document(str(i), ind[a:z].astype(str).astype(self.st), w.docs.values[a:z])
        self.index = seismic.SeismicIndex.build_from_dataset(ds)
        self.index.save(str(tmp / "seismic"))
        self.bytes = dir_bytes(tmp / "seismic.index.seismic")
        self.queries = [w.queries.row(i) for i in range(w.queries.num_rows)]
        self.qc = [t.astype(str).astype(self.st) for t, _ in self.queries]

    def engine(self, query_cut: int, heap_factor: float):  # noqa: ANN201
        def search(qi: int, k: int) -> list[int]:
            res = self.index.search(str(qi), self.qc[qi], self.queries[qi][1], k=k, query_cut=query_cut,
                                    heap_factor=heap_factor)  # fmt: skip
            return [int(r[2]) for r in res]

        return search, self.bytes


def measure(search: Search, nq: int, k: int, want: list[list[int]]) -> dict:
    for qi in range(min(nq, 30)):
        search(qi, k)
    lat, got = [], []
    for qi in range(nq):
        t0 = time.perf_counter_ns()
        got.append(search(qi, k))
        lat.append((time.perf_counter_ns() - t0) / 1e6)
    rec = [len(set(g[:k]) & set(t[:k])) / len(t[:k]) for g, t in zip(got, want) if t]
    return {
        f"recall@{k}": float(np.mean(rec)),
        f"mean@{k}": float(np.mean(lat)),
        f"p99@{k}": float(np.percentile(lat, 99)),
    }


def run(name: str, enc: Path, nq: int) -> dict:
    w = load_workload(name, enc, nq, 0)
    nq = w.queries.num_rows
    ref = canonical_reference(w.docs, VOCAB)
    impacts = quantize(w.docs.values, ref.scale)
    want = {k: truth(w, k) for k in (10, 1000)}
    tmp = Path(tempfile.mkdtemp(prefix="tradeoff-"))
    points: list[tuple[str, str, Callable]] = [("ours", "exact", lambda: ours(w, tmp))]
    points += [("ours", f"query mass {m}", lambda m=m: ours(w, tmp, query_mass=m)) for m in (0.95, 0.9, 0.8, 0.7)]
    points += [("ours", f"doc mass {m}", lambda m=m: ours(w, tmp, doc_mass=m)) for m in (0.9, 0.8, 0.7)]
    points += [("bmp", f"block {b}, alpha 1", lambda b=b: bmp_engine(w, impacts, tmp, b, 1.0)) for b in (8, 16, 32)]
    points += [("bmp", f"block 16, alpha {a}", lambda a=a: bmp_engine(w, impacts, tmp, 16, a)) for a in (0.9, 0.8)]
    seismic_index: list[SeismicIndex] = []

    def seismic_point(qc: int, hf: float):  # noqa: ANN202
        if not seismic_index:
            seismic_index.append(SeismicIndex(w, tmp))
        return seismic_index[0].engine(qc, hf)

    points += [("seismic", f"query_cut {qc}, heap_factor {hf}", lambda qc=qc, hf=hf: seismic_point(qc, hf))
               for qc in (5, 10, 20) for hf in (0.7, 0.9)]  # fmt: skip
    rows = []
    for engine, setting, make in points:
        t0 = time.perf_counter()
        try:
            search, size = make()
        except Exception as e:  # noqa: BLE001 - a peer failing must not hide the others
            rows.append({"engine": engine, "setting": setting, "error": f"{type(e).__name__}: {e}"})
            continue
        row = {"engine": engine, "setting": setting, "setup_s": time.perf_counter() - t0, "bytes": size}
        for k in (10, 1000):
            row.update(measure(search, nq, k, want[k]))
        rows.append(row)
        print(f"  {engine:8s} {setting:32s} R@10 {row['recall@10']:.4f}  mean@10 {row['mean@10']:.3f} ms", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    return {"workload": name, "docs": w.docs.num_rows, "queries": nq, "rows": rows}


def plot(res: dict, path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for engine, marker in (("ours", "o"), ("bmp", "s"), ("seismic", "^")):
        pts = [r for r in res["rows"] if r["engine"] == engine and "error" not in r]
        ax.scatter([r["mean@10"] for r in pts], [r["recall@10"] for r in pts], marker=marker, label=engine)
        for r in pts:
            ax.annotate(r["setting"], (r["mean@10"], r["recall@10"]), fontsize=6, xytext=(3, 2),
                        textcoords="offset points")  # fmt: skip
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel("mean latency at k=10, one thread (ms, log scale)")
    ax.set_ylabel("recall@10 against exact float scoring")
    ax.set_title(f"{res['workload']}: {res['docs']:,} docs, {res['queries']} queries, SPLADE-tiny")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", nargs="+", default=["scifact"], choices=["scifact", "debian"])
    ap.add_argument("--encoded", type=Path, default=Path(".cache/encoded"))
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/tradeoff.json"))
    ap.add_argument("--replot", action="store_true", help="only redraw the PNGs from --out's JSON")
    args = ap.parse_args(argv)
    if args.replot:
        for res in json.loads(args.out.read_text())["results"]:
            plot(res, args.out.with_name(f"tradeoff-{res['workload']}.png"))
        return []
    results = []
    for name in args.workload:
        print(f"\n== {name}", flush=True)
        res = run(name, args.encoded, args.queries)
        results.append(res)
        cols = ["engine", "setting", "recall@10", "mean@10", "p99@10", "recall@1000", "mean@1000", "p99@1000", "MB"]
        body = []
        for r in res["rows"]:
            if "error" in r:
                body.append([r["engine"], r["setting"], r["error"], *[""] * 6])
                continue
            body.append([r["engine"], r["setting"], *(f"{r[c]:.4f}" if c.startswith("recall") else f"{r[c]:.3f}"
                                                      for c in cols[2:8]), f"{r['bytes'] / 1e6:.1f}"])  # fmt: skip
        print(f"\n### {name}: {res['docs']:,} docs, {res['queries']} queries (ms, one thread)\n")
        print(grid(cols, body))
        plot(res, args.out.with_name(f"tradeoff-{name}.png"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count()}
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
