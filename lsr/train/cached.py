"""The optimisation loop of the stages that train a small part beside a frozen encoder, on vectors computed once:
inference-free queries (lsr.train.lookup) and a dense head (lsr.train.dense_head). Both take seconds to minutes
on a CPU, so they write no checkpoints: a run starts over."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from indexer.atomic import write_bytes

from ..progress import progress as progress_bar
from . import losses
from .config import TrainConfig
from .data import Batch, TrainSet

# (batch, the teacher ensemble's (B, G) target or None) -> the named, weighted loss parts of one step
StepLoss = Callable[[Batch, "torch.Tensor | None"], dict[str, torch.Tensor]]


def fit(
    cfg: TrainConfig,
    data: TrainSet,
    params: list[torch.nn.Parameter],
    step_loss: StepLoss,
    info: dict[str, Any],
    desc: str,
    show_progress: bool = True,
) -> int:
    """Adam on ``params`` over the training set's batches ([data], [optim] epochs and max_steps, [run] seed), the
    loss parts logged as the mean of every ``log_every`` steps to OUT/log.jsonl; ``info`` plus the config, commit
    and step count go to OUT/run.json first. Returns the number of steps taken."""
    from .trainer import git_commit

    out, lo = Path(cfg.run.out), cfg.loss
    opt = torch.optim.Adam(params, lr=cfg.optim.lr)
    total = data.steps_per_epoch(cfg.data.batch_size) * cfg.optim.epochs
    if cfg.optim.max_steps:
        total = min(total, cfg.optim.max_steps)
    out.mkdir(parents=True, exist_ok=True)
    info = {"config": cfg.to_dict(), "git_commit": git_commit(), "queries": len(data), "total_steps": total,
            "trainable_parameters": sum(p.numel() for p in params), **info}  # fmt: skip
    write_bytes(out / "run.json", (json.dumps(info, indent=2, default=str) + "\n").encode())
    progress = progress_bar(total, show_progress, desc, unit="step")
    step, window = 0, {}
    with open(out / "log.jsonl", "w", encoding="utf-8") as log:
        for epoch in range(cfg.optim.epochs):
            batches = data.batches(cfg.run.seed, epoch, 0, cfg.data.batch_size, cfg.data.group_size,
                                   cfg.data.negatives_depth)  # fmt: skip
            for _, batch in batches:
                if step >= total:
                    break
                target = None
                if lo.kl or lo.margin_mse:
                    teachers = {n: torch.as_tensor(v) for n, v in batch.teachers.items()}
                    target = losses.ensemble_target(teachers, lo.teachers, lo.teacher_norm)
                parts = step_loss(batch, target)
                loss = sum(parts.values())
                if not math.isfinite(float(loss.detach())):
                    raise FloatingPointError(f"loss is {float(loss.detach())} at step {step}; lower [optim] lr")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                progress.update(1)
                for k, v in parts.items():
                    window[k] = window.get(k, 0.0) + float(v.detach())
                if step % cfg.run.log_every == 0 or step == total:
                    n = cfg.run.log_every if step % cfg.run.log_every == 0 else step % cfg.run.log_every
                    rec = {"step": step, "epoch": epoch, **{k: v / n for k, v in window.items()}}
                    log.write(json.dumps(rec) + "\n")
                    window = {}
    progress.close()
    return step
