"""``python -m lsr.train CONFIG [--set SECTION.KEY=VALUE ...] [--no-resume]``: the same job as ``lsr train``,
without the CLI's extra dependencies (for a bare training machine). ``torchrun --nproc-per-node N -m lsr.train
CONFIG`` trains data-parallel on N processes (see ``Trainer``)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from .config import TrainConfig, parse_overrides


def run(cfg: TrainConfig, resume: bool = True, minutes: float | None = None, show_progress: bool = True):  # noqa: ANN201
    """Train what the config asks for: the encoder (Trainer), inference-free queries (LookupTrainer) or a dense head
    beside a frozen encoder (DenseHeadTrainer)."""
    if cfg.model.dense_head_only:
        from .dense_head import DenseHeadTrainer

        return DenseHeadTrainer(cfg).train(show_progress=show_progress)
    if cfg.model.queries == "lookup":
        from .lookup import LookupTrainer

        return LookupTrainer(cfg).train(show_progress=show_progress)
    from .trainer import Trainer

    budget = minutes * 60 if minutes else None
    return Trainer(cfg).train(resume=resume, time_budget_s=budget, show_progress=show_progress)


@contextmanager
def process_group(device: str) -> Iterator[None]:
    """Under torchrun (WORLD_SIZE > 1 in the environment) join the process group for data-parallel training:
    NCCL on CUDA, gloo on the CPU; leave it at the end."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield
        return
    import torch.distributed as dist

    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    try:
        yield
        dist.barrier()  # every process done before any tears the group down
    finally:
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lsr.train", description=__doc__)
    ap.add_argument("config")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    ap.add_argument("--no-resume", action="store_true")
    ap.add_argument("--minutes", type=float, default=None, help="stop with a checkpoint after this long (resumable)")
    ap.add_argument(
        "--save-latest", action="store_true", help="save the latest checkpoint's model as OUT/model; no training"
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        cfg = TrainConfig.load(args.config, parse_overrides(args.set))
        if args.save_latest:
            from .trainer import Trainer

            folder, step = Trainer(cfg).save_latest()
            print(f"{folder} (step {step})")  # noqa: T201
            return 0
        with process_group(cfg.run.device):
            model = run(cfg, resume=not args.no_resume, minutes=args.minutes)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)  # noqa: T201
        return 2
    print(model if model else "stopped early; run the same command again to resume")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
