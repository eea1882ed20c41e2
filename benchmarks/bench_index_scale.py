"""`lsr index` end to end at scale: a BEIR-style corpus, and the same corpus
repeated R times (ids suffixed ``#r`` from the second copy on), each indexed
by the CLI in a fresh process. Prints wall time, throughput and the process's
peak RSS (from wait4), and writes JSON. Peak RSS that stays flat as R grows
is the bounded-memory check.

    python -m benchmarks.bench_index_scale --corpus debian/corpus.jsonl.gz --repeats 1,3 \\
        --device cuda --out benchmarks/results/index-scale.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def repeated(corpus: Path, times: int, target: Path) -> Path:
    if times == 1:
        return corpus
    with (
        gzip.open(corpus, "rt", encoding="utf-8") as src,
        gzip.open(target, "wt", encoding="utf-8", compresslevel=1) as out,
    ):
        lines = src.readlines()
        for r in range(times):
            for line in lines:
                rec = json.loads(line)
                if r:
                    rec["_id"] = f"{rec['_id']}#{r}"
                out.write(json.dumps(rec) + "\n")
    return target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--repeats", default="1,3")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default="splade-tiny")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--shard-size", type=int, default=20000)
    ap.add_argument("--work", type=Path, default=Path("runs/scale"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/index-scale.json"))
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for times in (int(r) for r in args.repeats.split(",")):
        corpus = repeated(args.corpus, times, args.work / f"corpus-x{times}.jsonl.gz")
        folder = args.work / f"collection-x{times}"
        cmd = [sys.executable, "-m", "cli", "index", str(corpus), "--out", str(folder), "--overwrite"]
        cmd += ["--model", args.model, "--dense-model", "none", "--device", args.device]
        cmd += ["--batch-size", str(args.batch_size), "--shard-size", str(args.shard_size)]
        t0 = time.perf_counter()
        with open(args.work / f"index-x{times}.log", "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"x{times} failed; see {args.work / f'index-x{times}.log'}")
        stats = json.loads((folder / "collection.json").read_text())["stats"]
        rows.append(
            {
                "repeat": times,
                "docs": stats["records"],
                "wall_s": wall,
                "docs_per_s": stats["records"] / wall,
                "encode_s": stats["encode_seconds"],
                "build_s": stats["build_seconds"],
                "peak_rss_mb": usage.ru_maxrss / 1024,
                "avg_doc_nnz": stats["avg_doc_nnz"],
            }
        )
    print("| docs | wall s | docs/s | encode s | build s | peak RSS MB |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['docs']:,} | {r['wall_s']:.1f} | {r['docs_per_s']:,.0f} | {r['encode_s']:.1f} "
            f"| {r['build_s']:.1f} | {r['peak_rss_mb']:,.0f} |"
        )
    meta = {"corpus": str(args.corpus), "device": args.device, "model": args.model, "batch_size": args.batch_size}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
