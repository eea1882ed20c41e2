"""Our index alone: open time and each run-time kernel side by side on the same queries.

Builds (once, into .cache/idx-<workload>) the index of a bench_index workload, then prints the
time to open it (every checksum and block verified) and, per kernel, the best of 5 single-thread
batch runs in ms per query at k=10 and k=1000. Writes JSON.

    python -m benchmarks.bench_kernels --workload debian --queries 1000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.bench_index import load_workload
from indexer import Index, IndexBuilder, _core


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", default="debian", choices=["scifact", "debian", "synth1m"])
    ap.add_argument("--encoded", type=Path, default=Path(".cache/encoded"))
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=Path("bench-out/kernels.json"))
    args = ap.parse_args()
    w = load_workload(args.workload, args.encoded, args.queries, 1_000_000)
    path = Path(f".cache/idx-{args.workload}")
    if not (path / "manifest.json").exists():
        with IndexBuilder(path, vocab_size=30522, overwrite=True) as b:
            b.add(w.doc_ids, w.docs)
    t0 = time.perf_counter()
    index = Index.open(path)
    out = {"workload": args.workload, "queries": w.queries.num_rows, "open_s": time.perf_counter() - t0}
    print(
        f"{args.workload}: open {out['open_s']:.3f} s for {index.num_postings:,} postings; "
        f"{w.queries.num_rows} queries, best of 5, ms/query, 1 thread"
    )
    print("| kernel | k=10 | k=1000 |\n|---|---:|---:|")
    before = _core.active_kernel()
    for kernel in _core.available_kernels():
        _core.select_kernel(kernel)
        row = {}
        for k in (10, 1000):
            best = float("inf")
            for _ in range(5):
                t0 = time.perf_counter()
                index.search_batch(w.queries, k=k, threads=1)
                best = min(best, time.perf_counter() - t0)
            row[k] = best / w.queries.num_rows * 1e3
        out[kernel] = row
        print(f"| {kernel} | {row[10]:.3f} | {row[1000]:.3f} |")
    _core.select_kernel(before)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
