"""Peak memory and time of building the sparse index: all postings in memory
(IndexBuilder) against term-range passes (build_index), on real SPLADE vectors.

The documents are a built collection's shards (the main job's runs/scifact:
5,183 SPLADE-tiny vectors) repeated R times under new ids, so R=200 is about a
million passages with scifact's term statistics. Each build runs in a fresh
process; peak RSS is that process's ru_maxrss. Both ways must write the same
postings.bin (checked by SHA-256).

    python -m benchmarks.bench_build --collection runs/scifact --repeats 20,60,200
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from indexer import IndexBuilder, build_index
from retrieval.collection import COLLECTION, iter_shards

MODES = ("memory", "passes")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(collection: Path, repeat: int, mode: str, out: Path) -> dict:
    meta = json.loads((collection / COLLECTION).read_text())
    base = [(ids, sparse) for ids, sparse, _ in iter_shards(collection, meta["shards"], dense=False)]
    vocab = meta["vocab_size"]
    rss_before = peak_rss_mb()

    def batches():  # noqa: ANN202
        for r in range(repeat):
            for ids, sparse in base:
                yield [f"{i}#{r}" for i in ids], sparse

    t0 = time.perf_counter()
    if mode == "memory":
        with IndexBuilder(out, vocab_size=vocab) as b:
            for ids, sparse in batches():
                b.add(ids, sparse)
    else:
        build_index(out, batches, vocab_size=vocab)
    seconds = time.perf_counter() - t0
    manifest = json.loads((out / "manifest.json").read_text())
    return {
        "mode": mode,
        "repeat": repeat,
        "docs": manifest["num_docs"],
        "postings": manifest["num_postings"],
        "seconds": seconds,
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak_rss_mb(),
        "postings_sha256": hashlib.sha256((out / "postings.bin").read_bytes()).hexdigest(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collection", type=Path, default=Path("runs/scifact"))
    ap.add_argument("--repeats", default="20,60,200")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/build-scifact.json"))
    ap.add_argument("--worker", nargs=2, metavar=("MODE", "REPEAT"), help=argparse.SUPPRESS)
    ap.add_argument("--target", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.collection, int(args.worker[1]), args.worker[0], args.target)))
        return

    rows = []
    with tempfile.TemporaryDirectory(dir=args.collection.parent) as tmp:
        for repeat in (int(r) for r in args.repeats.split(",")):
            for mode in MODES:
                target = Path(tmp) / f"{mode}-{repeat}"
                cmd = [sys.executable, "-m", "benchmarks.bench_build", "--collection", str(args.collection)]
                cmd += ["--worker", mode, str(repeat), "--target", str(target)]
                proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    sys.exit(f"{mode} x{repeat} failed:\n{proc.stderr}")
                rows.append(json.loads(proc.stdout.splitlines()[-1]))
                shutil.rmtree(target)
            same = len({r["postings_sha256"] for r in rows if r["repeat"] == repeat}) == 1
            if not same:
                sys.exit(f"x{repeat}: the two builds wrote different postings.bin")
    print("| docs | postings | mode | build s | peak RSS MB | RSS before build MB |")
    print("|---:|---:|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['docs']:,} | {r['postings']:,} | {r['mode']} | {r['seconds']:.1f} "
            f"| {r['peak_rss_mb']:,.0f} | {r['rss_before_mb']:,.0f} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"collection": str(args.collection), "runs": rows}, indent=2))


if __name__ == "__main__":
    main()
