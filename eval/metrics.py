"""Effectiveness through ir-measures (standard names), per query, and a paired significance test."""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]

DEFAULT_MEASURES = ("nDCG@10", "R@100", "R@1000", "RR@10")


class Comparison(NamedTuple):
    measure: str
    mean_a: float
    mean_b: float
    p_value: float  # two-sided paired t-test over the queries both runs were judged on
    queries: int


def _parse(measures: tuple[str, ...] | list[str]) -> list:
    import ir_measures

    return [ir_measures.parse_measure(m) for m in measures]


IDENTICAL_ID_DATASETS = ("arguana", "quora", "cqadupstack")  # their queries are also documents of the corpus


def drops_identical_ids(dataset: str | Path) -> bool:
    """Whether a dataset needs BEIR's ``ignore_identical_ids``: its queries are documents of its own corpus, so a
    hit with the query's own id is the query finding itself. Elsewhere query and document ids are separate
    numberings, and dropping such hits would remove judged documents."""
    return Path(dataset).name.lower().startswith(IDENTICAL_ID_DATASETS)


def evaluate(
    run: Run, qrels: Qrels, measures: tuple[str, ...] = DEFAULT_MEASURES, ignore_identical_ids: bool = False
) -> dict[str, float]:
    """Means over the judged queries; a judged query missing from the run counts as 0 (as BEIR does). With
    ``ignore_identical_ids`` a retrieved document whose id is the query's is dropped (BEIR's option)."""
    per = per_query(run, qrels, measures, ignore_identical_ids)
    return {m: sum(per[m].values()) / max(len(per[m]), 1) for m in measures}


def per_query(
    run: Run, qrels: Qrels, measures: tuple[str, ...] = DEFAULT_MEASURES, ignore_identical_ids: bool = False
) -> dict[str, dict[str, float]]:
    import ir_measures

    parsed = _parse(measures)
    judged = {q for q, rels in qrels.items() if any(r > 0 for r in rels.values())}
    out: dict[str, dict[str, float]] = {m: dict.fromkeys(judged, 0.0) for m in measures}
    names = {str(p): m for p, m in zip(parsed, measures)}
    run = {q: {d: s for d, s in docs.items() if not (ignore_identical_ids and d == q)} for q, docs in run.items()
           if q in judged}  # fmt: skip
    run = {q: docs for q, docs in run.items() if docs}
    for metric in ir_measures.iter_calc(parsed, qrels, run):
        if metric.query_id in judged:  # some providers also report queries without a relevant document
            out[names[str(metric.measure)]][metric.query_id] = float(metric.value)
    return out


def compare(a: Run, b: Run, qrels: Qrels, measures: tuple[str, ...] = DEFAULT_MEASURES) -> list[Comparison]:
    from scipy import stats

    pa, pb = per_query(a, qrels, measures), per_query(b, qrels, measures)
    out = []
    for m in measures:
        qs = sorted(pa[m])
        xa, xb = [pa[m][q] for q in qs], [pb[m][q] for q in qs]
        diff = [x - y for x, y in zip(xa, xb)]
        if len(qs) < 2 or all(d == diff[0] for d in diff):
            p = 1.0 if all(d == 0 for d in diff) else 0.0
        else:
            p = float(stats.ttest_rel(xa, xb).pvalue)
        out.append(Comparison(m, sum(xa) / max(len(xa), 1), sum(xb) / max(len(xb), 1), p, len(qs)))
    return out


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    s = sorted(values)
    pos = (len(s) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)
