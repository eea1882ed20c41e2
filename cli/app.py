"""The ``lsr`` command: index a corpus, search it, evaluate on BEIR / MS MARCO, tune hybrid fusion, train.

    lsr index CORPUS --out DIR [--model splade-tiny] [--dense-model minilm-l6|none]
    lsr search DIR --queries FILE | --query TEXT [--mode sparse|dense|hybrid] --out RUN
    lsr eval --data DATASET [--collection DIR] [--split test] [--modes sparse,dense,hybrid]
    lsr tune-fusion --data DATASET --collection DIR [--split train] [--method rrf]
    lsr compare RUN_A RUN_B --qrels FILE
    lsr trainset --corpus C --queries Q --qrels TRAIN_QRELS --out DIR [--pseudo-passages N]
    lsr train CONFIG.toml [--set SECTION.KEY=VALUE]

Each stage is also ``python -m cli <stage> ...``. Long jobs show a progress bar with an ETA.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from eval import metrics
from retrieval import trec
from retrieval.corpus import find, read_qrels, read_queries
from retrieval.fusion import METHODS, Fusion, fuse, grid
from retrieval.searcher import FUSION_DEPTH, MODES

logger = logging.getLogger(__name__)
FUSION_FILE = "fusion.json"  # a collection's tuned fusion (tune-fusion writes it; search and eval read it)
app = typer.Typer(
    add_completion=False, no_args_is_help=True, help=__doc__.split("\n")[0], pretty_exceptions_enable=False
)

# What bad input raises (a missing file, a malformed or incomplete collection, duplicate ids, a wrong
# vocabulary, bad settings): reported in one line with exit status 2; --verbose shows the traceback.
USER_ERRORS = (FileNotFoundError, FileExistsError, ValueError, RuntimeError)


def command(name: str | None = None):  # noqa: ANN201
    def wrap(fn):  # noqa: ANN001, ANN202
        @functools.wraps(fn)
        def run(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            try:
                return fn(*args, **kwargs)
            except USER_ERRORS as e:
                if kwargs.get("verbose"):
                    raise
                typer.echo(f"error: {e}", err=True)
                raise typer.Exit(2) from None

        return app.command(name)(run)

    return wrap


DEFAULT_SPARSE = "splade-tiny-distil"  # the sparse encoder of the main job (trained here: lsr/weights)


QUIET = ("faiss", "transformers", "sentence_transformers", "huggingface_hub", "httpx", "urllib3", "filelock")


def _setup_logging(verbose: bool) -> None:
    """Logs on stderr (stdout holds results); other libraries' chatter only with --verbose."""
    from rich.console import Console
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
    )
    if not verbose:
        for name in QUIET:
            logging.getLogger(name).setLevel(logging.WARNING)
        try:
            import transformers

            transformers.utils.logging.disable_progress_bar()
        except ImportError:
            pass


class LogLines:
    """Progress where no bar can be drawn (a file, a pipe): a log line with count, rate and ETA at most every
    ``every`` seconds, and at the end."""

    def __init__(self, what: str, unit: str, every: float = 10.0) -> None:
        self.what, self.unit, self.every = what, unit, every
        self.start = self.last = time.monotonic()
        self.first: int | None = None

    def update(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self.first is None:  # a resumed run starts past zero: rate from here
            self.first = done
        if now - self.last < self.every and done < total:
            return
        self.last = now
        rate = (done - self.first) / max(now - self.start, 1e-9)
        eta = f", ETA {(total - done) / rate:.0f} s" if rate > 0 and done < total else ""
        logger.info("%s: %d / %d %s (%.1f %s/s%s)", self.what, done, total, self.unit, rate, self.unit, eta)


def _encoders(model: str, dense_model: str | None, device: str = "cpu"):  # noqa: ANN202
    from retrieval.collection import load_encoders

    return load_encoders(model, dense_model, device)


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _none(name: str | None) -> str | None:
    return None if name in (None, "", "none") else name


def build_collection(
    corpus: Path,
    out: Path,
    model: str,
    dense_model: str | None,
    *,
    fmt: str | None = None,
    id_field: str = "_id",
    text_fields: tuple[str, ...] = ("title", "text"),
    shard_size: int = 10_000,
    batch_size: int = 32,
    shard_id: int = 0,
    num_shards: int = 1,
    dense_index: str = "flat",
    overwrite: bool = False,
    device: str = "cpu",
    doc_max_terms: int | None = None,
    doc_mass: float | None = None,
    ray: str | None = None,
    ray_workers: int = 1,
):  # noqa: ANN201
    """Encode and index a corpus here, or on a Ray cluster (``ray``: its address, ``auto``, or ``local``); returns
    the stats and the encoders loaded here (None, None on Ray, where the workers load them)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from retrieval.collection import Job, build

    sparse = dense = None
    if ray is None:
        sparse, dense = _encoders(model, dense_model, device)
    job = Job(str(corpus), fmt, id_field, tuple(text_fields), model, dense_model, shard_size, dense_index,
              doc_max_terms, doc_mass)  # fmt: skip
    from rich.console import Console

    console = Console(stderr=True)
    with Progress(
        TextColumn("encoding"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("docs"),
        TimeRemainingColumn(),
        transient=False,
        console=console,
        disable=not console.is_terminal,  # off a terminal: log lines below instead of one finished bar
    ) as bar:
        task = bar.add_task("encode", total=None)
        lines = LogLines("encoding", "docs")

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)
            if not console.is_terminal:
                lines.update(done, total)

        if ray is not None:
            from retrieval.distributed import build_on_ray

            stats = build_on_ray(
                out, job, address=None if ray == "local" else ray, workers=ray_workers, device=device,
                batch_size=batch_size, overwrite=overwrite, progress=progress,
            )  # fmt: skip
        else:
            stats = build(
                out,
                job,
                sparse,
                dense,
                batch_size=batch_size,
                shard_id=shard_id,
                num_shards=num_shards,
                overwrite=overwrite,
                progress=progress,
            )
    return stats, sparse, dense


@command()
def index(
    corpus: Annotated[Path, typer.Argument(help="corpus file: BEIR corpus.jsonl[.gz], JSONL or MS MARCO TSV")],
    out: Annotated[Path, typer.Option(help="collection folder")],
    model: str = DEFAULT_SPARSE,
    dense_model: Annotated[str, typer.Option(help="dense encoder, or 'none'")] = "minilm-l6",
    fmt: Annotated[str | None, typer.Option("--format", help="beir | jsonl | tsv (default: from the name)")] = None,
    id_field: str = "_id",
    text_field: Annotated[list[str] | None, typer.Option(help="text fields, joined (default: title, text)")] = None,
    shard_size: int = 10_000,
    batch_size: int = 32,
    shard_id: int = 0,
    num_shards: int = 1,
    dense_index: Annotated[
        str, typer.Option(help="flat (exact), hnsw, or ivfpq (compressed 32x, memory-mapped, approximate)")
    ] = "flat",
    device: Annotated[str, typer.Option(help="where the encoders run: cpu, cuda, cuda:1, ...")] = "cpu",
    doc_max_terms: Annotated[
        int | None, typer.Option(help="static pruning: keep each document's N heaviest terms in the sparse index")
    ] = None,
    doc_mass: Annotated[
        float | None,
        typer.Option(help="static pruning: keep each document's heaviest terms holding this share of its weight"),
    ] = None,
    ray: Annotated[
        str | None,
        typer.Option(
            help="encode on a Ray cluster: its address (host:6379, ray://host:10001), auto, or local "
            "(a Ray started here); needs the ray extra"
        ),
    ] = None,
    ray_workers: Annotated[int, typer.Option(help="encoder actors on Ray (one GPU each with --device cuda)")] = 1,
    overwrite: bool = False,
    verbose: bool = False,
) -> None:
    """Encode a corpus into shards and build the sparse and dense indexes (resumable)."""
    _setup_logging(verbose)
    if not corpus.is_file():  # before any model loads
        raise typer.BadParameter(f"{corpus}: no such file")
    if doc_max_terms is not None and doc_max_terms < 1:
        raise typer.BadParameter(f"--doc-max-terms must be at least 1, not {doc_max_terms}")
    if doc_mass is not None and not 0.0 < doc_mass <= 1.0:
        raise typer.BadParameter(f"--doc-mass must be in (0, 1], not {doc_mass}")
    if ray is not None:
        if num_shards != 1:
            raise typer.BadParameter("--ray spreads the shards itself; leave out --num-shards / --shard-id")
        if ray_workers < 1:
            raise typer.BadParameter(f"--ray-workers must be at least 1, not {ray_workers}")
        if importlib.util.find_spec("ray") is None:
            raise typer.BadParameter("--ray needs Ray: pip install '.[ray]'")
    t0 = time.perf_counter()
    stats, _, _ = build_collection(
        corpus,
        out,
        model,
        _none(dense_model),
        fmt=fmt,
        id_field=id_field,
        text_fields=tuple(text_field or ("title", "text")),
        shard_size=shard_size,
        batch_size=batch_size,
        shard_id=shard_id,
        num_shards=num_shards,
        dense_index=dense_index,
        overwrite=overwrite,
        device=device,
        doc_max_terms=doc_max_terms,
        doc_mass=doc_mass,
        ray=ray,
        ray_workers=ray_workers,
    )
    dt = time.perf_counter() - t0
    rate = f" ({stats.records / stats.encode_seconds:.1f} docs/s)" if stats.shards_encoded else ""
    empty = f", {stats.empty} with an empty text" if stats.empty else ""
    typer.echo(
        f"{stats.records} documents ({stats.skipped} malformed records skipped{empty}), {stats.shards_encoded} "
        f"shards encoded in {stats.encode_seconds:.1f} s{rate}, indexes built in {stats.build_seconds:.1f} s, "
        f"{dt:.1f} s in all with model loading, peak RSS {peak_rss_mb():.0f} MB"
    )
    for line, reason in stats.problems[:20]:
        typer.echo(f"  line {line}: {reason}")


def _queries(query: list[str] | None, queries: Path | None) -> dict[str, str]:
    if queries:
        return read_queries(queries)
    if query:
        return {str(i + 1): q for i, q in enumerate(query)}
    raise typer.BadParameter("give --query TEXT or --queries FILE")


def _fusion(  # noqa: PLR0913
    collection: Path,
    fusion_file: Path | None,
    method: str | None = None,
    weights: str | None = None,
    rrf_k: float | None = None,
    norm: str | None = None,
) -> Fusion:
    """The fusion a hybrid search uses: the options given, else ``--fusion-file``, else the collection's own tuned
    fusion (``COLLECTION/fusion.json``, written by tune-fusion), else DBSF with equal weights."""
    default = Fusion()
    if any(x is not None for x in (method, weights, rrf_k, norm)):
        ws = default.weights if weights is None else tuple(float(w) for w in weights.split(","))
        return Fusion(method or default.method, ws, default.rrf_k if rrf_k is None else rrf_k, norm or default.norm)
    path = fusion_file or (collection / FUSION_FILE if (collection / FUSION_FILE).is_file() else None)
    if path is None:
        return default
    d = json.loads(path.read_text())["fusion"]
    logger.info("hybrid fusion from %s: %s %s", path, d["method"], d["weights"])
    return Fusion(d["method"], tuple(d["weights"]), d["rrf_k"], d["norm"])


def _set_algorithm(name: str) -> None:
    from indexer.index import ALGORITHM_ENV, ALGORITHMS

    if name not in ALGORITHMS:
        raise typer.BadParameter(f"--algorithm must be one of {', '.join(ALGORITHMS)}, not {name!r}")
    os.environ[ALGORITHM_ENV] = name  # every index this process opens searches this way


@command()
def search(
    collection: Path,
    query: Annotated[list[str] | None, typer.Option(help="a query (repeatable)")] = None,
    queries: Annotated[Path | None, typer.Option(help="queries file (BEIR jsonl or TSV)")] = None,
    mode: str = "sparse",
    k: int = 10,
    out: Annotated[Path | None, typer.Option(help="TREC run file (default: print)")] = None,
    fusion_file: Annotated[
        Path | None, typer.Option(help="tuned fusion (default: COLLECTION/fusion.json from tune-fusion, if any)")
    ] = None,
    method: Annotated[str | None, typer.Option(help="rrf | linear | dbsf (default: tuned, else dbsf)")] = None,
    weights: Annotated[str | None, typer.Option(help="sparse,dense (default 1,1)")] = None,
    rrf_k: float | None = None,
    norm: Annotated[str | None, typer.Option(help="minmax | zscore")] = None,
    fusion_depth: Annotated[
        int, typer.Option(min=1, help="hybrid: each list searched this deep (or k) before fusing")
    ] = FUSION_DEPTH,
    threads: Annotated[int, typer.Option(min=1, help="threads of the batch search")] = 1,
    filter_json: Annotated[
        str | None,
        typer.Option("--filter", help='only documents whose metadata match, e.g. \'{"field": "source", "eq": "kjv"}\''),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="table (rank, id, score, text) or trec; --out always writes TREC")
    ] = "table",
    max_terms: Annotated[
        int | None, typer.Option(min=1, help="approximate: search only each query's N heaviest terms")
    ] = None,
    mass: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="approximate: the heaviest terms holding this weight share")
    ] = None,
    algorithm: Annotated[
        str,
        typer.Option(help="how the sparse index is searched, all exact: exhaustive, block_max, block_forward, auto"),
    ] = "exhaustive",
    verbose: bool = False,
) -> None:
    """Search a collection (all queries in one batch); prints the hits as a table (or a TREC run), or writes a
    TREC run with --out."""
    _setup_logging(verbose)
    _set_algorithm(algorithm)
    if fmt not in ("table", "trec"):
        raise typer.BadParameter(f"--format must be table or trec, not {fmt!r}")
    if mode not in MODES:  # checked before any model loads
        raise typer.BadParameter(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
    from retrieval.query import Pruning
    from retrieval.searcher import Collection, Searcher

    asked = _queries(query, queries)
    col = Collection.open(collection)
    job = col.meta["job"]
    sparse, dense = _encoders(job["sparse_model"], job["dense_model"] if mode != "sparse" else None)
    run, t = Searcher(col, sparse, dense).search(
        asked, mode, k, _fusion(collection, fusion_file, method, weights, rrf_k, norm),
        threads=threads, per_query=False, filter=_filter_arg(filter_json),
        prune=None if max_terms is None and mass is None else Pruning(max_terms, mass), depth=fusion_depth,
    )  # fmt: skip
    if out:
        trec.write_run(out, run, f"lsr-{mode}")
        typer.echo(f"{len(run)} queries -> {out}")
    elif fmt == "trec":
        sys.stdout.write(trec.format_run(run, f"lsr-{mode}"))
    else:
        _print_hits(run, asked, job)


def _print_hits(run: dict, queries: dict[str, str], job: dict) -> None:
    """One table per query: rank, id, score and the start of the document's text (read from the corpus)."""
    from rich.console import Console
    from rich.table import Table

    from retrieval.corpus import read_texts

    texts: dict[str, str] = {}
    if Path(job["input"]).is_file():
        wanted = {d for hits in run.values() for d in hits}
        reader = {"fmt": job["fmt"], "id_field": job["id_field"], "text_fields": tuple(job["text_fields"])}
        texts = read_texts(job["input"], wanted, **reader)
    console = Console()
    for qid, text in queries.items():
        hits = run.get(qid, {})
        table = Table(title=f"{qid}: {text}", title_justify="left", show_lines=False)
        id_width = max([2, *(len(d) for d in hits)])
        table.add_column("rank", justify="right", no_wrap=True, min_width=4)
        table.add_column("id", no_wrap=True, min_width=id_width)
        table.add_column("score", justify="right", no_wrap=True, min_width=7)
        # what the terminal has left (13: borders and padding), so the first three columns keep their width
        table.add_column("text", overflow="ellipsis", no_wrap=True, max_width=max(10, console.width - id_width - 24))
        for rank, (doc, score) in enumerate(hits.items(), 1):
            table.add_row(str(rank), doc, f"{score:.3f}", " ".join(texts.get(doc, "").split())[:120])
        console.print(table)


def _filter_arg(raw: str | None) -> dict | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        raise typer.BadParameter(f"--filter is not JSON: {e}") from None
    from retrieval.filters import FilterError, parse

    try:
        parse(value)
    except FilterError as e:
        raise typer.BadParameter(str(e)) from None
    return value


def _dataset(data: Path, split: str) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    from eval.experiment import load_split

    try:
        return load_split(data, split)
    except (ValueError, FileNotFoundError) as e:
        raise typer.BadParameter(str(e)) from None


def _ensure_collection(data: Path, collection: Path | None, model: str, dense_model: str | None) -> Path:
    collection = collection or Path("runs") / f"{data.name}-{model}"
    from retrieval.collection import COLLECTION

    if not (collection / COLLECTION).exists():
        build_collection(find(data, "corpus"), collection, model, dense_model)
    return collection


@command("eval")
def evaluate(
    data: Annotated[Path, typer.Option(help="BEIR dataset folder (e.g. ../shared/data/scifact)")],
    collection: Annotated[Path | None, typer.Option(help="collection folder (built when missing)")] = None,
    split: str = "test",
    modes: Annotated[str, typer.Option(help="of sparse, dense, hybrid, exact, bm25, impact")] = "sparse,dense,hybrid",
    model: str = DEFAULT_SPARSE,
    dense_model: str = "minilm-l6",
    fusion_file: Annotated[
        Path | None, typer.Option(help="tuned fusion (default: COLLECTION/fusion.json from tune-fusion, if any)")
    ] = None,
    ignore_identical_ids: Annotated[
        bool | None,
        typer.Option(
            "--ignore-identical-ids/--keep-identical-ids",
            help="drop hits whose id is the query's (default: only for ArguAna, Quora, CQADupStack)",
        ),
    ] = None,
    k: int = 1000,
    measures: Annotated[
        str, typer.Option(help="ir-measures names, comma-separated (graded TREC DL: 'nDCG@10,R(rel=2)@1000')")
    ] = ",".join(metrics.DEFAULT_MEASURES),
    out: Annotated[Path | None, typer.Option(help="folder for runs, per_query.tsv and report.json")] = None,
    verbose: bool = False,
) -> None:
    """Evaluate sparse, dense and hybrid retrieval on a BEIR split (runs, metrics, latency)."""
    _setup_logging(verbose)
    from eval.experiment import ALL_MODES, run_experiment
    from retrieval.searcher import Collection, Searcher

    _dataset(data, split)
    wanted = modes.split(",")
    if bad := [m for m in wanted if m not in ALL_MODES]:  # before any model loads
        raise typer.BadParameter(f"unknown modes {bad}; choose from {', '.join(ALL_MODES)}")
    collection = _ensure_collection(data, collection, model, _none(dense_model))
    col = Collection.open(collection)
    job = col.meta["job"]
    needs_dense = any(m in ("dense", "hybrid") for m in wanted)
    sparse, dense = _encoders(job["sparse_model"], job["dense_model"] if needs_dense else None)
    fusion = _fusion(collection, fusion_file)
    report = run_experiment(
        data,
        col,
        Searcher(col, sparse, dense),
        wanted,
        split=split,
        fusion=fusion,
        k=k,
        measures=tuple(measures.split(",")),
        out=out or collection / f"eval-{split}",
        ignore_identical_ids=ignore_identical_ids,
    )
    if report["ignore_identical_ids"]:
        typer.echo("hits whose id is the query's own are dropped (--ignore-identical-ids)")
    _print_table(report)


def _print_table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"{report['dataset']} ({report['split']}, {report['queries']} queries, "
        f"{report['num_docs']} docs, doc nnz {report['doc_nnz']:.0f})"
    )
    cols = ["mode", *report["measures"], "encode ms/q", "search p50 ms", "search p99 ms", "query nnz"]
    for c in cols:
        table.add_column(c)
    for r in report["rows"]:
        fmt = [f"{r[m]:.4f}" for m in report["measures"]]
        extra = [r["encode_ms_per_query"], r["search_ms_p50"], r["search_ms_p99"], r["query_nnz"]]
        table.add_row(r["mode"], *fmt, *["" if v is None else f"{v:.2f}" for v in extra])
    Console().print(table)


@command("tune-fusion")
def tune_fusion(
    data: Annotated[Path, typer.Option(help="BEIR dataset folder (e.g. ../shared/data/scifact)")],
    collection: Annotated[Path | None, typer.Option(help="collection folder (built when missing)")] = None,
    split: Annotated[str, typer.Option(help="a training split; never the test split")] = "train",
    method: Annotated[str, typer.Option(help="rrf | linear | dbsf | all")] = "all",
    measure: str = "nDCG@10",
    k: Annotated[int, typer.Option(help="depth of the runs fused while tuning")] = 100,
    out: Annotated[Path | None, typer.Option(help="where to write the chosen fusion (JSON)")] = None,
    verbose: bool = False,
) -> None:
    """Pick hybrid fusion weights on a training split's qrels."""
    _setup_logging(verbose)
    if split == "test":
        raise typer.BadParameter("tune on a training split, never on the test split")
    if method not in (*METHODS, "all"):
        raise typer.BadParameter(f"method must be one of {METHODS} or 'all'")
    from retrieval.searcher import Collection, Searcher

    queries, qrels = _dataset(data, split)
    collection = _ensure_collection(data, collection, DEFAULT_SPARSE, "minilm-l6")
    col = Collection.open(collection)
    job = col.meta["job"]
    sparse, dense = _encoders(job["sparse_model"], job["dense_model"])
    searcher = Searcher(col, sparse, dense)
    runs = [searcher.search(queries, "sparse", k)[0], searcher.search(queries, "dense", k)[0]]
    best, best_score, tried = None, -1.0, []
    for f in [f for m in (METHODS if method == "all" else (method,)) for f in grid(m)]:
        score = metrics.evaluate(fuse(runs, f, k), qrels, (measure,))[measure]
        tried.append({"fusion": f._asdict(), measure: score})
        if score > best_score:
            best, best_score = f, score
    out = out or collection / FUSION_FILE
    out.write_text(
        json.dumps(
            {"split": split, "measure": measure, "score": best_score, "fusion": best._asdict(), "tried": tried},
            indent=2,
        )
    )
    typer.echo(f"best {measure} on {split} ({len(queries)} queries): {best_score:.4f} with {best} -> {out}")


@command()
def export(
    collection: Annotated[Path, typer.Argument(help="a collection folder (lsr index)")],
    out: Annotated[Path, typer.Option(help="folder to write the export's files into")],
    fmt: Annotated[
        str, typer.Option("--format", help="pyserini (Anserini JsonVectorCollection) | qdrant | elasticsearch")
    ] = "pyserini",
    index_name: Annotated[str, typer.Option(help="the _index of the Elasticsearch / OpenSearch bulk actions")] = "lsr",
    no_text: Annotated[bool, typer.Option(help="leave the documents' texts out")] = False,
    verbose: bool = False,
) -> None:
    """Export a collection's documents and vectors for another engine (terms named by token)."""
    _setup_logging(verbose)
    from retrieval.export import FORMATS, export_collection

    if fmt not in FORMATS:  # before anything loads
        raise typer.BadParameter(f"--format must be one of {', '.join(FORMATS)}")
    if not (collection / "collection.json").is_file():
        raise typer.BadParameter(f"{collection}: not a complete collection (no collection.json)")
    stats = export_collection(collection, out, fmt, with_text=not no_text, index_name=index_name)
    typer.echo(f"{stats.documents} documents as {fmt}: {', '.join(str(out / f) for f in stats.files)}")


@command()
def compare(
    run_a: Path, run_b: Path, qrels: Annotated[Path, typer.Option(help="qrels file")], verbose: bool = False
) -> None:
    """Paired t-test between two runs, per measure."""
    _setup_logging(verbose)
    for c in metrics.compare(trec.read_run(run_a), trec.read_run(run_b), read_qrels(qrels)):
        typer.echo(f"{c.measure:10} {c.mean_a:.4f} vs {c.mean_b:.4f}  p={c.p_value:.4g}  ({c.queries} queries)")


@command()
def trainset(
    corpus: Annotated[Path, typer.Option(help="corpus: BEIR corpus.jsonl[.gz], JSONL or MS MARCO TSV")],
    out: Annotated[Path, typer.Option(help="working folder; the training set lands in OUT/set")],
    queries: Annotated[Path | None, typer.Option(help="queries file with the train split's queries")] = None,
    qrels: Annotated[Path | None, typer.Option(help="a TRAIN split's qrels (a test split is refused)")] = None,
    pseudo_passages: Annotated[int, typer.Option(help="passages to write pseudo-queries for (-1: all)")] = 0,
    per_passage: int = 4,
    roundtrip_k: Annotated[int, typer.Option(help="keep a pseudo-query if its passage is in the teachers' top k")] = 3,
    candidates: Annotated[int, typer.Option(help="hard negatives kept per query")] = 50,
    sparse_model: str = "splade-tiny",
    dense_model: str = "minilm-l6",
    generator: str = "smollm2-135m",
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1, ...")] = "cpu",
    batch_size: int = 64,
    seed: int = 0,
    fmt: Annotated[str | None, typer.Option("--format", help="beir | jsonl | tsv (default: from the name)")] = None,
    generate_only: Annotated[bool, typer.Option(help="stop after the pseudo-queries (run the rest elsewhere)")] = False,
    teachers_from: Annotated[
        Path | None, typer.Option(help="copy the teachers' indexes of another trainset folder over the same corpus")
    ] = None,
    verbose: bool = False,
) -> None:
    """Build a training set: pseudo-queries, round-trip filter, hard negatives, teacher scores (resumable)."""
    _setup_logging(verbose)
    from lsr.train.trainer import check_device
    from retrieval.trainset import TrainsetSettings, build_trainset

    check_device(device)
    if (queries is None) != (qrels is None):
        raise ValueError("--queries and --qrels go together (real supervision from a train split)")
    if qrels is None and pseudo_passages == 0:
        raise ValueError("nothing to train on: give --queries/--qrels of a train split, or --pseudo-passages")
    settings = TrainsetSettings(
        sparse_model=sparse_model, dense_model=dense_model, pseudo_passages=pseudo_passages, generator=generator,
        per_passage=per_passage, roundtrip_k=roundtrip_k, candidates=candidates, seed=seed, device=device,
        batch_size=batch_size, teachers_from=None if teachers_from is None else str(teachers_from),
    )  # fmt: skip
    t0 = time.perf_counter()
    folder = build_trainset(out, corpus, queries, qrels, settings, fmt=fmt, generate_only=generate_only)
    if generate_only:
        typer.echo(f"{folder}: pseudo-queries written in {time.perf_counter() - t0:.1f} s")
        return
    from lsr.train.data import MANIFEST

    manifest = json.loads((folder / MANIFEST).read_text())
    typer.echo(f"{folder}: {json.dumps(manifest['counts'])} in {time.perf_counter() - t0:.1f} s")
    typer.echo(f"seconds per step: {json.dumps(manifest['seconds'])}")


@command()
def teacher(
    trainset: Annotated[Path, typer.Argument(help="a training set folder (OUT/set of lsr trainset)")],
    model: Annotated[str, typer.Option(help="a trained sparse encoder of ours: alias or folder")],
    out: Annotated[Path, typer.Option(help="where the training set with the new teacher column is written")],
    doc_vectors: Annotated[
        Path | None, typer.Option(help="the documents' vectors by that model (a vector file with ids); else encoded")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1, ...")] = "cpu",
    batch_size: int = 32,
    verbose: bool = False,
) -> None:
    """Add a trained model's scores as the teacher `model` of a training set (self-distillation)."""
    _setup_logging(verbose)
    from lsr.train.trainer import check_device
    from retrieval.trainset import add_model_teacher

    check_device(device)
    t0 = time.perf_counter()
    folder = add_model_teacher(trainset, out, model, doc_vectors=doc_vectors, device=device, batch_size=batch_size)
    typer.echo(f"{folder}: teacher 'model' ({model}) added in {time.perf_counter() - t0:.1f} s; train with "
               "[loss] teachers = {..., model = 1.0}")  # fmt: skip


@command()
def train(
    config: Annotated[Path, typer.Argument(help="experiment config (TOML): [model] [data] [loss] [sparsity] ...")],
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override a setting: SECTION.KEY=VALUE (VALUE in TOML)")
    ] = None,
    resume: Annotated[bool, typer.Option(help="continue from the run folder's latest checkpoint")] = True,
    verbose: bool = False,
) -> None:
    """Train a sparse encoder by distillation; writes run.json, log.jsonl, checkpoints/ and model/."""
    _setup_logging(verbose)
    from lsr.train.__main__ import run
    from lsr.train.config import TrainConfig, parse_overrides

    t0 = time.perf_counter()
    model = run(TrainConfig.load(config, parse_overrides(set_)), resume=resume)
    typer.echo(f"{model} ({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    app()
