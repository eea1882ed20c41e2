"""Hybrid fusion of ranked lists (runs: query id -> doc id -> score).

- RRF, reciprocal rank fusion (Cormack, Clarke & Buettcher, SIGIR 2009):
  ``sum_s w_s / (k + rank_s(d))``, ranks from 1; a document a source did not return adds nothing.
- Linear combination of per-query normalised scores: ``minmax`` maps a source's scores for one query
  to [0, 1], ``zscore`` to mean 0 / standard deviation 1; ``sum_s w_s norm_s(d)``, a missing document
  adds nothing.
- DBSF, distribution-based score fusion (as in Qdrant): each source's scores for one query are
  mapped linearly so that mean - 3 sd -> 0 and mean + 3 sd -> 1 (not clipped: the documents that
  matter are exactly the outliers above mean + 3 sd of a deep list), then summed with weights.

Every method returns each query's top ``k`` by fused score, ties broken by doc id.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

Run = dict[str, dict[str, float]]
METHODS = ("rrf", "linear", "dbsf")
NORMS = ("minmax", "zscore")


class Fusion(NamedTuple):
    """A fusion setting; weights are per source, in the order the runs are given. The default, DBSF with equal
    weights, is what a collection without a tuned fusion uses (it was at or above RRF on every collection tried)."""

    method: str = "dbsf"
    weights: tuple[float, ...] = (1.0, 1.0)
    rrf_k: float = 60.0
    norm: str = "minmax"

    def check(self, sources: int) -> None:
        if self.method not in METHODS:
            raise ValueError(f"fusion method must be one of {METHODS}, not {self.method!r}")
        if self.norm not in NORMS:
            raise ValueError(f"normalisation must be one of {NORMS}, not {self.norm!r}")
        if len(self.weights) != sources:
            raise ValueError(f"{len(self.weights)} weights for {sources} runs")
        if not all(math.isfinite(w) and w >= 0 for w in self.weights):
            raise ValueError(f"weights must be finite and >= 0, got {self.weights}")
        if not (math.isfinite(self.rrf_k) and self.rrf_k >= 0):
            raise ValueError(f"rrf_k must be finite and >= 0, got {self.rrf_k}")


def _minmax(scores: Mapping[str, float]) -> dict[str, float]:
    lo, hi = min(scores.values()), max(scores.values())
    if hi == lo:
        return {d: 1.0 for d in scores}
    return {d: (s - lo) / (hi - lo) for d, s in scores.items()}


def _mean_sd(scores: Mapping[str, float]) -> tuple[float, float]:
    n = len(scores)
    mean = sum(scores.values()) / n
    return mean, math.sqrt(sum((s - mean) ** 2 for s in scores.values()) / n)


def _zscore(scores: Mapping[str, float]) -> dict[str, float]:
    mean, sd = _mean_sd(scores)
    if sd == 0:
        return {d: 0.0 for d in scores}
    return {d: (s - mean) / sd for d, s in scores.items()}


def _dbsf(scores: Mapping[str, float]) -> dict[str, float]:
    mean, sd = _mean_sd(scores)
    if sd == 0:
        return {d: 1.0 for d in scores}
    lo = mean - 3 * sd
    return {d: (s - lo) / (6 * sd) for d, s in scores.items()}


def _ranks(scores: Mapping[str, float]) -> dict[str, float]:
    order = sorted(scores, key=lambda d: (-scores[d], d))
    return {d: float(r) for r, d in enumerate(order, 1)}


def top_k(scores: Mapping[str, float], k: int) -> dict[str, float]:
    order = sorted(scores, key=lambda d: (-scores[d], d))[:k]
    return {d: scores[d] for d in order}


def fuse(runs: Sequence[Run], fusion: Fusion, k: int = 1000) -> Run:
    """Fuse runs over the union of their queries."""
    fusion.check(len(runs))
    out: Run = {}
    for qid in sorted(set().union(*runs)):
        fused: dict[str, float] = {}
        for run, w in zip(runs, fusion.weights):
            scores = run.get(qid)
            if not scores or w == 0:
                continue
            if fusion.method == "rrf":
                part = {d: 1.0 / (fusion.rrf_k + r) for d, r in _ranks(scores).items()}
            elif fusion.method == "dbsf":
                part = _dbsf(scores)
            else:
                part = _minmax(scores) if fusion.norm == "minmax" else _zscore(scores)
            for d, s in part.items():
                fused[d] = fused.get(d, 0.0) + w * s
        out[qid] = top_k(fused, k)
    return out


def grid(method: str) -> list[Fusion]:
    """The settings tune-fusion tries: the second source's weight relative to the first, and RRF's k."""
    ratios = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
    if method == "rrf":
        return [Fusion("rrf", (1.0, r), rrf_k=k) for r in ratios for k in (10.0, 30.0, 60.0, 100.0)]
    if method == "linear":
        return [Fusion("linear", (1.0, r), norm=n) for r in ratios for n in NORMS]
    if method == "dbsf":
        return [Fusion("dbsf", (1.0, r)) for r in ratios]
    raise ValueError(f"fusion method must be one of {METHODS}, not {method!r}")
