"""One evaluation experiment: a built collection, a BEIR split, a list of modes -> runs and a report
(effectiveness next to efficiency). The ``lsr eval`` command and the regression test both run this."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from retrieval import trec
from retrieval.corpus import find, read_qrels, read_queries
from retrieval.fusion import Fusion
from retrieval.searcher import MODES, Collection, Searcher, Timings

from . import metrics

BASELINES = ("bm25", "impact")  # Lucene through Pyserini (eval.baselines)
ALL_MODES = (*MODES, *BASELINES)


def load_split(data: Path, split: str) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """The judged queries of a split (query id -> text) and their qrels."""
    qrels = read_qrels(Path(data) / "qrels" / f"{split}.tsv")
    queries = read_queries(find(data, "queries"))
    missing = [q for q in qrels if q not in queries]
    if missing:
        raise ValueError(f"{len(missing)} judged queries have no text in {data}, e.g. {missing[:3]}")
    return {q: queries[q] for q in qrels}, qrels


def baseline(mode: str, col: Collection, sparse: Any, queries: dict[str, str], k: int) -> tuple[dict, Timings]:
    from . import baselines

    t = Timings()
    t0 = time.perf_counter()  # search_s includes building the Lucene index on the first call
    if mode == "bm25":
        job = col.meta["job"]
        read_args = {"fmt": job["fmt"], "id_field": job["id_field"], "text_fields": tuple(job["text_fields"])}
        run = baselines.bm25(col.path, Path(job["input"]), queries, k, **read_args)
    else:
        qids = list(queries)
        qb = sparse.encode_queries([queries[q] for q in qids])
        t.encode_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        t.query_nnz = qb.nnz / max(qb.num_rows, 1)
        vecs = {}
        for i, q in enumerate(qids):
            idx, val = qb.row(i)
            vecs[q] = dict(zip(idx.tolist(), val.tolist()))
        run = baselines.impact(col.path, col.meta["shards"], vecs, k)
    t.search_s = time.perf_counter() - t0
    return run, t


def run_experiment(
    data: Path,
    col: Collection,
    searcher: Searcher,
    modes: list[str],
    *,
    split: str = "test",
    fusion: Fusion | None = None,
    k: int = 1000,
    measures: tuple[str, ...] = metrics.DEFAULT_MEASURES,
    out: Path | None = None,
    ignore_identical_ids: bool | None = None,
) -> dict:
    """Search every mode, score it, and (with ``out``) write ``MODE.trec``, ``per_query.tsv``, ``report.json`` and
    ``modes.png`` (eval.plot: the modes side by side, and per query against bm25, or the first mode).
    ``ignore_identical_ids`` (default: only for the datasets that need it, ``metrics.drops_identical_ids``) drops
    hits whose id is the query's; the report says whether it was on."""
    if ignore_identical_ids is None:
        ignore_identical_ids = metrics.drops_identical_ids(data)
    bad = [m for m in modes if m not in ALL_MODES]
    if bad:
        raise ValueError(f"unknown modes {bad}; choose from {ALL_MODES}")
    queries, qrels = load_split(data, split)
    fusion = fusion or Fusion()
    rows = []
    per_mode: dict[str, dict[str, dict[str, float]]] = {}
    per_query_lines = ["mode\tmeasure\tquery\tvalue"]
    for mode in modes:
        if mode in BASELINES:
            run, t = baseline(mode, col, searcher.sparse_encoder, queries, k)
        else:
            run, t = searcher.search(queries, mode, k, fusion)
        per = metrics.per_query(run, qrels, measures, ignore_identical_ids)
        per_mode[mode] = per
        if out is not None:
            trec.write_run(out / f"{mode}.trec", run, f"lsr-{mode}")
            per_query_lines.extend(f"{mode}\t{m}\t{q}\t{v:.6f}" for m in measures for q, v in sorted(per[m].items()))
        rows.append(
            {
                "mode": mode,
                **{m: sum(per[m].values()) / max(len(per[m]), 1) for m in measures},
                "encode_ms_per_query": 1000 * t.encode_s / len(queries),
                "search_ms_p50": metrics.percentile(t.per_query_ms, 50) if t.per_query_ms else None,
                "search_ms_p99": metrics.percentile(t.per_query_ms, 99) if t.per_query_ms else None,
                "search_s": t.search_s,
                "query_nnz": t.query_nnz if mode not in ("dense", "bm25") else None,
            }
        )
    report = {
        "dataset": Path(data).name,
        "split": split,
        "ignore_identical_ids": ignore_identical_ids,
        "queries": len(queries),
        "collection": str(col.path),
        "sparse_model": col.meta["job"]["sparse_model"],
        "dense_model": col.meta["job"]["dense_model"],
        "num_docs": col.num_docs,
        "index_mb": col.sparse.size_bytes / 1e6,
        "doc_nnz": col.meta["stats"]["avg_doc_nnz"],
        "encode_seconds": col.meta["stats"]["encode_seconds"],
        "fusion": fusion._asdict(),
        "measures": list(measures),
        "rows": rows,
    }
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(report, indent=2))
        (out / "per_query.tsv").write_text("\n".join(per_query_lines) + "\n")
        from .plot import plot_modes

        plot_modes(report, per_mode, out / "modes.png", "bm25" if "bm25" in per_mode else modes[0])
    return report
