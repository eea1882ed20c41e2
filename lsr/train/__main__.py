"""``python -m lsr.train CONFIG [--set SECTION.KEY=VALUE ...] [--no-resume]``: the same job as ``lsr train``,
without the CLI's extra dependencies (for a bare training machine)."""

from __future__ import annotations

import argparse
import logging
import sys

from .config import TrainConfig, parse_overrides


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lsr.train", description=__doc__)
    ap.add_argument("config")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    ap.add_argument("--no-resume", action="store_true")
    ap.add_argument("--minutes", type=float, default=None, help="stop with a checkpoint after this long (resumable)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        cfg = TrainConfig.load(args.config, parse_overrides(args.set))
        from .trainer import Trainer

        budget = args.minutes * 60 if args.minutes else None
        model = Trainer(cfg).train(resume=not args.no_resume, time_budget_s=budget)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)  # noqa: T201
        return 2
    print(model if model else "stopped early; run the same command again to resume")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
