"""The picture of an evaluation: each mode's scores side by side, and per query, how each mode differs from a
baseline mode (sorted, so the share of queries helped and hurt reads off the curve). ``lsr eval`` writes it as
``modes.png`` beside ``report.json``."""

from __future__ import annotations

from pathlib import Path


def plot_modes(report: dict, per_query: dict[str, dict[str, dict[str, float]]], out: Path, baseline: str) -> Path:
    """``per_query``: mode -> measure -> query -> value. Left: every measure of every mode (bars). Right: for each
    other mode, its per-query difference from ``baseline`` on the first measure, sorted. Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from indexer.atomic import write_file

    modes = [r["mode"] for r in report["rows"]]
    measures = report["measures"]
    first = measures[0]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    width = 0.8 / max(len(modes), 1)
    x = np.arange(len(measures))
    for i, row in enumerate(report["rows"]):
        values = [row[m] for m in measures]
        bars = left.bar(x + i * width - 0.4 + width / 2, values, width, label=row["mode"])
        left.bar_label(bars, labels=[f"{v:.3f}" for v in values], fontsize=6, rotation=90, padding=2)
    left.set_xticks(x, measures)
    left.set_ylim(0, 1.1)
    left.set_title(f"{report['dataset']} {report['split']} ({report['queries']} queries)")
    left.legend(fontsize=8, ncol=2)
    base = per_query.get(baseline, {}).get(first, {})
    for mode in modes:
        if mode == baseline or not base:
            continue
        got = per_query[mode][first]
        diff = np.sort([got.get(q, 0.0) - v for q, v in base.items()])[::-1]
        better, worse = int((diff > 0).sum()), int((diff < 0).sum())
        right.plot(np.arange(len(diff)) / len(diff), diff, label=f"{mode} (+{better} / -{worse})")
    right.axhline(0, color="grey", linewidth=0.8)
    right.set_xlabel("share of queries (sorted by difference)")
    right.set_ylabel(f"{first} minus {baseline}'s")
    right.set_title(f"per query, against {baseline}")
    right.legend(fontsize=8)
    write_file(out, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return out
