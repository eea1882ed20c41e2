"""Corpus encoding on Ray against the single-machine job: throughput with 1, 2, ... workers, and agreement.

    python -m benchmarks.bench_ray_encode --docs 4000 --workers 1 2 [--model splade-tiny] [--device cpu]

The first ``--docs`` passages of debian-docs-en (a plain JSONL copy, so workers seek to their shards) are indexed
by ``collection.build`` in this process and by ``distributed.build_on_ray`` on a local Ray instance with each
worker count (one actor per worker; on the CPU each actor gets cores / workers torch threads, so the comparison
is of the same cores used in other ways). Reported: encoding seconds and docs/s, the scaling factor against one
Ray worker, Ray's overhead against the in-process job, and whether the sparse index files are byte-identical to
the in-process job's. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import itertools
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from benchmarks.report import grid

CORPUS = Path(__file__).resolve().parents[1].parent / "shared/corpora/debian-docs-en/corpus.jsonl.gz"


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted((folder / "sparse").iterdir()):
        if f.is_file() and f.suffix != ".json":  # the manifest records build times
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=int, default=4000)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--model", default="splade-tiny")
    p.add_argument("--device", default="cpu")
    p.add_argument("--shard-size", type=int, default=250)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/ray-encode.json"))
    a = p.parse_args(argv)
    import ray
    import torch

    from retrieval.collection import Job, build, load_encoders
    from retrieval.distributed import build_on_ray

    cores = os.cpu_count() or 1
    rows, results = [], []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "debian.jsonl"
        with gzip.open(CORPUS, "rt", encoding="utf-8") as src, open(corpus, "w", encoding="utf-8") as dst:
            dst.writelines(itertools.islice(src, a.docs))
        job = Job(str(corpus), None, "_id", ("title", "text"), a.model, None, a.shard_size)
        sparse, _ = load_encoders(a.model, None, a.device)
        t0 = time.perf_counter()
        local = build(Path(tmp) / "local", job, sparse, batch_size=a.batch_size)
        wall = time.perf_counter() - t0
        ref = digest(Path(tmp) / "local")
        results.append({"engine": "in-process", "workers": 1, "threads": torch.get_num_threads(),
                        "encode_s": local.encode_seconds, "wall_s": wall, "docs": local.records,
                        "identical": True})  # fmt: skip
        for w in a.workers:
            threads = max(1, cores // w) if a.device == "cpu" else torch.get_num_threads()
            ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"OMP_NUM_THREADS": str(threads)}})  # fmt: skip
            t0 = time.perf_counter()
            got = build_on_ray(Path(tmp) / f"ray{w}", job, address=None, workers=w, device=a.device,
                               batch_size=a.batch_size)  # fmt: skip
            wall = time.perf_counter() - t0
            ray.shutdown()
            same = digest(Path(tmp) / f"ray{w}") == ref
            results.append({"engine": "ray", "workers": w, "threads": threads, "encode_s": got.encode_seconds,
                            "wall_s": wall, "docs": got.records, "identical": same})  # fmt: skip
    one = next((r for r in results if r["engine"] == "ray" and r["workers"] == 1), None)
    for r in results:
        r["docs_per_s"] = r["docs"] / r["encode_s"]
        r["vs_one_ray_worker"] = (one["encode_s"] / r["encode_s"]) if one else None
        rows.append([r["engine"], r["workers"], r["threads"], f"{r['encode_s']:.1f}", f"{r['docs_per_s']:.0f}",
                     "—" if r["vs_one_ray_worker"] is None else f"{r['vs_one_ray_worker']:.2f}x",
                     f"{results[0]['encode_s'] / r['encode_s']:.2f}x", "yes" if r["identical"] else "NO"])  # fmt: skip
    print(grid(["engine", "workers", "torch threads each", "encode s", "docs/s", "vs 1 Ray worker",  # noqa: T201
                "vs in-process", "index identical"], rows))  # fmt: skip
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"machine": platform.machine(), "cores": cores, "model": a.model,
                                 "device": a.device, "docs": a.docs, "shard_size": a.shard_size,
                                 "results": results}, indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
