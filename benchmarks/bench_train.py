"""Training throughput: our trainer beside sentence-transformers' SparseEncoderTrainer, same model, loss and batch.

    python -m benchmarks.bench_train --device cuda --models splade-tiny,smollm2-135m --batch-size 32 \
        --trainset runs/ts-scifact/set --out benchmarks/results/train-h100.json

Both train the same weights on the same (query, positive, hard negative) triplets drawn from a training set (lsr
trainset) with the same loss: InfoNCE over in-batch and hard negatives (sentence-transformers'
SparseMultipleNegativesRankingLoss inside SpladeLoss) plus FLOPS on queries and documents (weights 1e-3), bf16
autocast on CUDA, AdamW. Each row times optimiser steps after ``--warmup`` steps and reads peak GPU memory. A step's
time is the wall clock from one step's end to the next's on both sides (every step synchronised on CUDA), so it
holds everything a step costs: fetching and tokenising the batch, forward, backward, optimiser. For sentence-
transformers, whose data loader and collator (which tokenises) run before its ``on_step_begin``, the JSON also keeps
the time inside its callbacks (``in_step_s``): timing only that flattered it before. Rows of one model run one after
the other in one process; the ratio column is ours over theirs from that run. With ``--repeat N`` each model runs
ours then theirs N times in one process and the table shows the last (warm) round: cuDNN and the allocators cache
per shape and per process, so a first round flatters whoever runs second on the shapes the first one planned; every
round is kept in the JSON. ``--profile DIR`` then runs each engine once more under ``torch.profiler`` (warm, same
process) and writes its operator tables, by device time and by host time, to DIR/MODEL-ENGINE-*.txt.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from lsr.train.config import TrainConfig
from lsr.train.data import TrainSet
from lsr.train.trainer import Trainer


def triplets(trainset: str, n: int, seed: int) -> list[tuple[str, str, str]]:
    ts = TrainSet.load(trainset)
    out: list[tuple[str, str, str]] = []
    epoch = 0
    while len(out) < n:
        for _, b in ts.batches(seed, epoch, 0, 1, 2, 30):
            out.append((b.queries[0], b.docs[0], b.docs[1]))
        epoch += 1
    return out[:n]


def profiled(fn, path: Path) -> None:  # noqa: ANN001
    """Run ``fn()`` under torch.profiler (host and, on CUDA, device activities) and write its operator tables."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=acts) as prof:
        fn()
    avg = prof.key_averages()
    device_key = "self_cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_name(path.name + "-device.txt").write_text(avg.table(sort_by=device_key, row_limit=40))
    path.with_name(path.name + "-host.txt").write_text(avg.table(sort_by="cpu_time_total", row_limit=60))


def ours(model: str, args: argparse.Namespace, steps: int, out: Path, profile_to: Path | None = None) -> dict:
    settings = {"pool_special_tokens": True} if model == "splade-tiny" else {}
    cfg = TrainConfig.from_dict(
        {
            "model": {"base": model, "settings": settings},
            "data": {"train": args.trainset, "batch_size": args.batch_size, "group_size": 2, "negatives_depth": 30},
            "loss": {"infonce": 1.0},
            "sparsity": {"query": 1e-3, "document": 1e-3},
            "optim": {"lr": 2e-5, "max_steps": steps, "epochs": 1000},
            "run": {"out": str(out), "device": args.device, "log_every": 1, "seed": args.seed},
        }
    )
    tr = Trainer(cfg)
    if profile_to is None:
        tr.train(resume=False, show_progress=False)
    else:
        profiled(functools.partial(tr.train, resume=False, show_progress=False), profile_to)
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()][args.warmup :]
    step_s = statistics.median(1 / (r["sequences_per_s"] / (3 * args.batch_size)) for r in log)
    res = {
        "step_s": step_s,
        "sequences_per_s": 3 * args.batch_size / step_s,
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in log),
        "peak_gpu_mb": max((r.get("peak_gpu_mb", 0.0) for r in log), default=None),
        "nnz_document_last": log[-1]["nnz_document"],
    }
    del tr
    return res


def theirs(
    model: str, args: argparse.Namespace, steps: int, data: list, out: Path, profile_to: Path | None = None
) -> dict:
    from datasets import Dataset
    from sentence_transformers import SparseEncoderTrainer, SparseEncoderTrainingArguments
    from sentence_transformers.sparse_encoder.losses import SparseMultipleNegativesRankingLoss, SpladeLoss
    from transformers import TrainerCallback

    from .bench_encode import ST

    st = ST(model, args.device, args.batch_size, 256, causal=model != "splade-tiny").model
    loss = SpladeLoss(
        st, SparseMultipleNegativesRankingLoss(st), query_regularizer_weight=1e-3, document_regularizer_weight=1e-3
    )
    inside: list[float] = []  # on_step_begin -> on_step_end: without fetching and collating the batch
    ends: list[float] = []  # step end to step end: everything a step costs, as ours is timed

    class Clock(TrainerCallback):
        def on_train_begin(self, *a, **k):  # noqa: ANN002, ANN003, ANN202
            ends.append(time.perf_counter())

        def on_step_begin(self, *a, **k):  # noqa: ANN002, ANN003, ANN202
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            self.t = time.perf_counter()

        def on_step_end(self, *a, **k):  # noqa: ANN002, ANN003, ANN202
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            now = time.perf_counter()
            inside.append(now - self.t)
            ends.append(now)

    ds = Dataset.from_dict({k: [t[i] for t in data] for i, k in enumerate(("anchor", "positive", "negative"))})
    targs = SparseEncoderTrainingArguments(
        output_dir=str(out), per_device_train_batch_size=args.batch_size, max_steps=steps, learning_rate=2e-5,
        bf16=args.device.startswith("cuda"), report_to="none", save_strategy="no", logging_strategy="no",
        dataloader_drop_last=True, seed=args.seed, use_cpu=not args.device.startswith("cuda"),
    )  # fmt: skip
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    trainer = SparseEncoderTrainer(model=st, args=targs, train_dataset=ds, loss=loss, callbacks=[Clock()])
    if profile_to is None:
        trainer.train()
    else:
        profiled(trainer.train, profile_to)
    step_s = statistics.median(b - a for a, b in zip(ends[args.warmup :], ends[args.warmup + 1 :]))
    peak = torch.cuda.max_memory_allocated() / 2**20 if args.device.startswith("cuda") else None
    del st, loss, trainer
    return {"step_s": step_s, "sequences_per_s": 3 * args.batch_size / step_s, "peak_gpu_mb": peak,
            "in_step_s": statistics.median(inside[args.warmup :])}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--models", default="splade-tiny,smollm2-135m")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=30, help="timed steps")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--trainset", default="runs/ts-scifact/set")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--repeat", type=int, default=1, help="rounds of ours-then-theirs per model; the last is shown")
    ap.add_argument("--out", default="bench-out/train.json")
    ap.add_argument("--profile", type=Path, default=None, help="also profile each engine once more, warm, into DIR")
    args = ap.parse_args()
    steps = args.steps + args.warmup
    data = triplets(args.trainset, steps * args.batch_size, args.seed)
    rows = []
    for model in args.models.split(","):
        rounds = []
        for _ in range(max(1, args.repeat)):
            with tempfile.TemporaryDirectory() as tmp:
                a = ours(model, args, steps, Path(tmp) / "ours")
                gc.collect()
                torch.cuda.empty_cache() if torch.cuda.is_available() else None
                b = theirs(model, args, steps, data, Path(tmp) / "st")
                gc.collect()
                torch.cuda.empty_cache() if torch.cuda.is_available() else None
            a["tokens_per_s_theirs_est"] = a["tokens_per_s"] * b["sequences_per_s"] / a["sequences_per_s"]
            rounds.append({"ours": a, "sentence_transformers": b, "speedup": b["step_s"] / a["step_s"]})
        rows.append({"model": model, **rounds[-1], "rounds": rounds})
        if args.profile is not None:  # warm: the same process has just run both
            with tempfile.TemporaryDirectory() as tmp:
                ours(model, args, steps, Path(tmp) / "ours", args.profile / f"{model}-ours")
                gc.collect()
                theirs(model, args, steps, data, Path(tmp) / "st", args.profile / f"{model}-sentence-transformers")
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.machine()
    meta = {
        "device": device,
        "batch_size": args.batch_size,
        "timed_steps": args.steps,
        "warmup": args.warmup,
        "repeat": args.repeat,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    shown = f", round {args.repeat} of {args.repeat}" if args.repeat > 1 else ""
    print(f"\n{device}, batch {args.batch_size} queries x (query, positive, negative), ", end="")
    print(f"median of {args.steps} steps{shown}")
    print("| model | engine | seq/s | tokens/s | peak GPU MB | ours / theirs |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        a, b = r["ours"], r["sentence_transformers"]
        peak = a["peak_gpu_mb"] or 0
        cells = [r["model"], "ours", f"{a['sequences_per_s']:.1f}", f"{a['tokens_per_s']:.0f}", f"{peak:.0f}"]
        print("| " + " | ".join(cells) + f" | {r['speedup']:.2f}x |")
        print(
            f"| {r['model']} | sentence-transformers | {b['sequences_per_s']:.1f} | "
            f"{a['tokens_per_s_theirs_est']:.0f} | {b['peak_gpu_mb'] or 0:.0f} | 1.00x |"
        )


if __name__ == "__main__":
    main()
