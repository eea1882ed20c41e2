"""A collection: a corpus encoded into shards, then built into the sparse index and a dense index.

Layout of a collection folder::

    job.json                  what is being built (input, format, models, shard size); resume checks it
    shards/shard-00000.safetensors ...   encoded records: ids, CSR sparse rows, dense rows
    sparse/                   our inverted index (indexer.Index)
    dense.faiss               faiss index over the dense rows, in the sparse index's doc order
    collection.json           written last: counts, models, skipped records; its presence means complete

The job (:func:`build`) first scans the input (counts records for the ETA, reports malformed ones
with line numbers, refuses duplicate ids before anything is encoded), then encodes shard after
shard; each shard is written atomically, so after a crash or Ctrl-C a rerun picks up after the last
complete shard. ``shard_id`` / ``num_shards`` split the encoding between workers that share the
folder (worker i takes shards i, i + n, ...); a final run without them builds the indexes once every
shard is there. The indexes are published atomically and ``collection.json`` only after them.
"""

from __future__ import annotations

import itertools
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from indexer import SparseBatch, build_index
from indexer.atomic import write_bytes, write_file

from .corpus import Doc, ReadReport, Span, read_docs, read_spans
from .vectors import read_vectors, write_vectors

logger = logging.getLogger(__name__)

JOB, COLLECTION, SHARDS, SPARSE, DENSE = "job.json", "collection.json", "shards", "sparse", "dense.faiss"
FORMAT_VERSION = 1
PROGRESS_STEP = 512  # documents encoded between progress updates


class DuplicateIdError(ValueError):
    pass


class IncompleteCollectionError(RuntimeError):
    pass


class SparseDocEncoder(Protocol):
    vocab_size: int
    vocab_hash: str

    def encode_documents(self, texts: list[str], batch_size: int = ...) -> SparseBatch: ...


class DenseDocEncoder(Protocol):
    def encode_documents(self, texts: list[str], batch_size: int = ...) -> np.ndarray: ...


@dataclass(frozen=True)
class Job:
    input: str
    fmt: str | None
    id_field: str
    text_fields: tuple[str, ...]
    sparse_model: str
    dense_model: str | None
    shard_size: int
    dense_index: str = "flat"  # flat (exact inner product), hnsw, or ivfpq (compressed, memory-mapped: DENSE_KINDS)
    doc_max_terms: int | None = None  # static pruning of the sparse index (indexer.csr.prune_rows); shards keep all
    doc_mass: float | None = None
    input_fingerprint: str = ""  # size and SHA-256 of the input, set by build(): resume refuses a changed file
    format_version: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Job:
        d = json.loads(data)
        d["text_fields"] = tuple(d["text_fields"])
        return cls(**d)


class InputError(ValueError):
    """A corpus that would index nothing: no readable record, or no text in the fields asked for."""


@dataclass
class Scan:
    records: int
    report: ReadReport
    input_bytes: int
    empty: int = 0  # records whose text is empty (indexed as documents without terms)
    starts: list[Span] = field(default_factory=list)  # where each shard's first record starts (shard_size apart)

    def stats(self) -> BuildStats:
        """A build's stats as the scan leaves them (records, malformed ones, empty texts)."""
        return BuildStats(records=self.records, skipped=self.report.skipped, problems=list(self.report.problems),
                          empty=self.empty)  # fmt: skip


@dataclass
class BuildStats:
    records: int = 0
    skipped: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)
    shards_encoded: int = 0
    encode_seconds: float = 0.0
    build_seconds: float = 0.0
    avg_doc_nnz: float = 0.0
    empty: int = 0  # records with an empty text


def shard_path(folder: Path, k: int) -> Path:
    return folder / SHARDS / f"shard-{k:05d}.safetensors"


def scan(job: Job) -> Scan:
    """Read the input once: count the records, collect the malformed ones, refuse duplicate ids, and refuse an
    input that would index nothing useful (no record read, or every text empty) with the option to change.
    Notes where each shard starts, so that workers can read their shards alone."""
    report = ReadReport(job.input)
    seen: dict[str, int] = {}
    dups: list[str] = []
    starts: list[Span] = []
    n = empty = 0
    reader = read_spans(job.input, fmt=job.fmt, id_field=job.id_field, text_fields=job.text_fields, report=report)
    for at, doc in reader:
        if doc.id in seen:
            if len(dups) < 5:
                dups.append(f"{doc.id!r} (records {seen[doc.id] + 1} and {n + 1})")
            continue
        seen[doc.id] = n
        if n % job.shard_size == 0:
            starts.append(at)
        n += 1
        empty += not doc.text.strip()
    if dups:
        raise DuplicateIdError(f"{job.input}: duplicate document ids, nothing encoded: {', '.join(dups)}")
    if n == 0:
        first = f" (first: line {report.problems[0].line}: {report.problems[0].reason})" if report.problems else ""
        hint = "--id-field" if any("id field" in p.reason for p in report.problems) else "--format"
        raise InputError(
            f"{job.input}: no record could be read, {report.skipped} skipped{first}; nothing encoded. "
            f"Check {hint} (id field {job.id_field!r}, format {job.fmt or 'from the file name'})"
        )
    if empty == n:
        raise InputError(
            f"{job.input}: all {n} records have an empty text in the fields {list(job.text_fields)}; nothing "
            "encoded. Check --text-field"
        )
    if empty:
        logger.warning("%s: %d of %d records have an empty text (indexed without terms)", job.input, empty, n)
    return Scan(n, report, Path(job.input).stat().st_size, empty, starts)


def _batches(job: Job, size: int) -> Iterator[list[Doc]]:
    batch: list[Doc] = []
    quiet = ReadReport(job.input, log=False)  # scan() has reported the problems already
    for doc in read_docs(job.input, fmt=job.fmt, id_field=job.id_field, text_fields=job.text_fields, report=quiet):
        batch.append(doc)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def load_encoders(sparse_model: str, dense_model: str | None, device: str = "cpu") -> tuple[Any, Any]:
    """The job's sparse encoder and dense encoder (None without one; the sparse model's own dense head when both
    name the same model, so each text goes through one forward pass)."""
    from lsr import DenseEncoder, SparseEncoder
    from lsr.dense_encoder import DenseHead

    sparse = SparseEncoder.from_pretrained(sparse_model, device=device)
    if dense_model is not None and dense_model == sparse_model:
        return sparse, DenseHead(sparse, dense_model)
    dense = DenseEncoder.from_pretrained(dense_model, device=device) if dense_model else None
    return sparse, dense


def shard_docs(job: Job, start: Span, rows: int) -> list[Doc]:
    """The ``rows`` documents from ``start`` on (a shard of ``scan(job).starts``), read alone: what a worker that
    encodes one shard reads (malformed records were reported by the scan and are skipped quietly)."""
    quiet = ReadReport(job.input, log=False)
    reader = read_docs(job.input, fmt=job.fmt, id_field=job.id_field, text_fields=job.text_fields, report=quiet,
                       start=start)  # fmt: skip
    return list(itertools.islice(reader, rows))


def write_shard(
    path: Path, ids: list[str], sparse: SparseBatch, dense: np.ndarray | None, metadata: list[dict | None] | None = None
) -> None:
    """One shard: ids, sparse rows, dense rows, and the documents' metadata when any has some."""
    write_vectors(path, sparse, dense, ids, metadata if metadata and any(m is not None for m in metadata) else None)


def read_shard(path: Path, *, dense: bool = True) -> tuple[list[str], SparseBatch, np.ndarray | None]:
    """One shard's ids, sparse rows and (if stored and ``dense``) dense rows (memory-mapped)."""
    try:
        ids, sparse, rows = read_vectors(path, dense=dense)
    except (ValueError, OSError) as e:
        raise IncompleteCollectionError(f"{path}: unreadable shard ({e}); delete it to re-encode") from None
    if ids is None:
        raise IncompleteCollectionError(f"{path}: a shard without ids; delete it to re-encode")
    return ids, sparse, rows


def iter_shards(
    folder: Path, count: int, *, dense: bool = True
) -> Iterator[tuple[list[str], SparseBatch, np.ndarray | None]]:
    """The ``count`` shards of a collection folder in order (the sparse index's doc order)."""
    for k in range(count):
        yield read_shard(shard_path(folder, k), dense=dense)


def _check_job(folder: Path, job: Job, overwrite: bool) -> None:
    if (folder / JOB).exists() and not overwrite:
        old = Job.from_json((folder / JOB).read_bytes())
        if legacy_fingerprint(old.input_fingerprint, job.input_fingerprint):  # written before content hashes
            logger.warning("%s: recording %s's content hash in place of its size and mtime", folder, job.input)
            old = replace(old, input_fingerprint=job.input_fingerprint)
            write_bytes(folder / JOB, old.to_json())
        if old != job:
            diff = [
                f"{k} {getattr(old, k)!r} -> {getattr(job, k)!r}"
                for k in asdict(job)
                if getattr(old, k) != getattr(job, k)
            ]
            raise ValueError(
                f"{folder} holds a job with other settings ({'; '.join(diff)}); use a new folder, or --overwrite "
                "(overwrite=True) to start it again"
            )
        return
    if overwrite and folder.exists():
        for name in (SHARDS, SPARSE):
            shutil.rmtree(folder / name, ignore_errors=True)
        for name in (COLLECTION, DENSE, JOB):
            (folder / name).unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    write_bytes(folder / JOB, job.to_json())


def input_fingerprint(path: Path) -> str:
    """Size and SHA-256 of a corpus file: ``SIZE:sha256:HEX``. The content, not the modification time, so that a
    copy or a fresh checkout of the same bytes still resumes and imports (one read of the file, less than the
    scan a build makes anyway)."""
    from indexer.manifest import sha256_file

    return f"{path.stat().st_size}:sha256:{sha256_file(path)}"


def legacy_fingerprint(recorded: str, current: str) -> bool:
    """Whether ``recorded`` is an older ``SIZE:MTIME`` fingerprint of a file of the same size as ``current``
    describes: trusted once (the records themselves are still checked where it matters) and then replaced."""
    parts = recorded.split(":")
    return len(parts) == 2 and parts[1].isdigit() and parts[0] == current.split(":")[0]


def prepare(folder: Path, job: Job, overwrite: bool) -> tuple[Job, BuildStats | None]:
    """Check a job before any encoding: its dense index kind, its input (fingerprinted into the job), the folder's
    recorded job (job.json: resume only the same settings and input). Returns the job and, when the folder is a
    complete collection already, its stats (nothing left to do)."""
    if job.dense_index not in DENSE_KINDS:
        raise ValueError(f"dense_index must be one of {DENSE_KINDS}, not {job.dense_index!r}")
    if not Path(job.input).is_file():
        raise FileNotFoundError(f"{job.input}: no such file")
    job = replace(job, input_fingerprint=input_fingerprint(Path(job.input)))
    _check_job(folder, job, overwrite)
    if not (folder / COLLECTION).exists():
        return job, None
    logger.info("%s is complete; nothing to do", folder)
    done = BuildStats(**json.loads((folder / COLLECTION).read_text())["stats"])
    return job, replace(done, shards_encoded=0, encode_seconds=0.0, build_seconds=0.0)


def build(
    folder: str | Path,
    job: Job,
    sparse_encoder: SparseDocEncoder,
    dense_encoder: DenseDocEncoder | None = None,
    *,
    batch_size: int = 32,
    shard_id: int = 0,
    num_shards: int = 1,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> BuildStats:
    """Encode ``job.input`` into shards under ``folder`` and, unless split between workers, build the
    indexes. ``progress(done, total)`` is called after every shard with record counts."""
    folder = Path(folder)
    if not 0 <= shard_id < num_shards:
        raise ValueError(f"shard_id must be in [0, num_shards), got {shard_id} of {num_shards}")
    if (job.dense_model is None) != (dense_encoder is None):
        raise ValueError("job.dense_model and dense_encoder must be given together")
    job, done = prepare(folder, job, overwrite)
    if done is not None:
        return done
    sc = scan(job)
    stats = sc.stats()
    total_shards = max(1, -(-sc.records // job.shard_size))
    mine = [k for k in range(total_shards) if k % num_shards == shard_id]
    todo = [k for k in mine if not shard_path(folder, k).exists()]
    done_records = sum(shard_rows(sc.records, job.shard_size, k) for k in mine if k not in todo)
    mine_records = sum(shard_rows(sc.records, job.shard_size, k) for k in mine)
    if len(todo) < len(mine):
        logger.info("resuming: %d of %d shards already encoded", len(mine) - len(todo), len(mine))
    t0 = time.perf_counter()
    for k, docs in enumerate(_batches(job, job.shard_size)):
        if k not in todo:
            continue

        def step(n: int) -> None:
            nonlocal done_records
            done_records += n
            if progress:
                progress(done_records, mine_records)

        sparse, dense = encode_docs(docs, sparse_encoder, dense_encoder, batch_size, step)
        write_shard(shard_path(folder, k), [d.id for d in docs], sparse, dense, [d.metadata for d in docs])
        stats.shards_encoded += 1
    stats.encode_seconds = time.perf_counter() - t0
    if num_shards > 1:
        logger.info(
            "worker %d of %d: its shards are encoded; run once more without --num-shards to build", shard_id, num_shards
        )
        return stats
    return finish(folder, job, stats, total_shards, sparse_encoder.vocab_size, sparse_encoder.vocab_hash)


def encode_docs(
    docs: list[Doc],
    sparse_encoder: SparseDocEncoder,
    dense_encoder: DenseDocEncoder | None,
    batch_size: int,
    step: Callable[[int], None] | None = None,
) -> tuple[SparseBatch, np.ndarray | None]:
    """One shard's sparse rows and dense rows (None without a dense encoder); ``step(n)`` after every
    PROGRESS_STEP documents, so a progress bar moves."""
    parts: list[SparseBatch] = []
    dense_parts: list[np.ndarray] = []
    for lo in range(0, len(docs), PROGRESS_STEP):
        texts = [d.text for d in docs[lo : lo + PROGRESS_STEP]]
        if dense_encoder is not None and getattr(dense_encoder, "sparse_encoder", None) is sparse_encoder:
            both = sparse_encoder.encode(texts, batch_size=batch_size)  # its dense head: one forward pass
            parts.append(both.sparse)
            dense_parts.append(both.dense)
        else:
            parts.append(sparse_encoder.encode_documents(texts, batch_size=batch_size))
            if dense_encoder is not None:
                dense_parts.append(dense_encoder.encode_documents(texts, batch_size=batch_size))
        if step:
            step(len(texts))
    return SparseBatch.concat(parts), (np.concatenate(dense_parts) if dense_parts else None)


def finish(
    folder: Path, job: Job, stats: BuildStats, total_shards: int, vocab_size: int, vocab_hash: str
) -> BuildStats:
    """Every shard encoded: build the indexes and write collection.json, which marks the collection complete."""
    missing = [k for k in range(total_shards) if not shard_path(folder, k).exists()]
    if missing:
        raise IncompleteCollectionError(f"{folder}: shards {missing[:10]} are missing")
    t1 = time.perf_counter()
    stats.avg_doc_nnz = _build_indexes(folder, job, vocab_size, vocab_hash, total_shards)
    stats.build_seconds = time.perf_counter() - t1
    meta = {
        "format_version": FORMAT_VERSION,
        "job": asdict(job),
        "vocab_size": vocab_size,
        "vocab_hash": vocab_hash,
        "num_docs": stats.records,
        "shards": total_shards,
        "stats": asdict(stats),
    }
    write_bytes(folder / COLLECTION, json.dumps(meta, indent=2).encode())
    logger.info("collection %s complete: %d docs (%d records skipped)", folder, stats.records, stats.skipped)
    return stats


def shard_rows(records: int, size: int, k: int) -> int:
    """How many of ``records`` shard ``k`` holds at ``size`` records a shard."""
    return max(0, min(size, records - k * size))


def _build_indexes(folder: Path, job: Job, vocab_size: int, vocab_hash: str, shards: int) -> float:
    """The sparse index in bounded memory (term-range passes over the shards), then the
    dense index (which holds every vector: faiss indexes live in memory)."""
    manifest = build_index(
        folder / SPARSE,
        lambda: ((ids, sparse) for ids, sparse, _ in iter_shards(folder, shards, dense=False)),
        vocab_size=vocab_size,
        model_id=job.sparse_model,
        vocab_hash=vocab_hash,
        overwrite=True,
        doc_max_terms=job.doc_max_terms,
        doc_mass=job.doc_mass,
    )
    if job.dense_model is not None:
        import faiss

        dense_index = None
        if job.dense_index == "ivfpq":  # trained first, on up to IVFPQ_TRAIN rows from the start of the corpus
            sample: list[np.ndarray] = []
            for _, _, dense in iter_shards(folder, shards):
                sample.append(dense)
                if sum(len(x) for x in sample) >= IVFPQ_TRAIN:
                    break
            train = np.concatenate(sample)[:IVFPQ_TRAIN]
            dense_index = new_dense_index(train.shape[1], "ivfpq", rows=_count(folder, shards))
            dense_index.train(train)
        for k, (_, _, dense) in enumerate(iter_shards(folder, shards)):
            if dense is None:
                raise IncompleteCollectionError(f"{shard_path(folder, k)} has no dense rows")
            if dense_index is None:
                dense_index = new_dense_index(dense.shape[1], job.dense_index)
            dense_index.add(dense)
        if dense_index is not None:
            write_file(folder / DENSE, lambda tmp: faiss.write_index(dense_index, str(tmp)))
    return manifest.num_postings / max(manifest.num_docs, 1)


DENSE_KINDS = ("flat", "hnsw", "ivfpq")
IVFPQ_TRAIN = 100_000  # rows an IVF-PQ index is trained on
IVFPQ_NPROBE = 32  # lists an IVF-PQ search visits (of 4 sqrt(n))
IVFPQ_K_FACTOR = 4.0  # candidates per hit re-ranked by the exact rows


def _count(folder: Path, shards: int) -> int:
    return sum(read_shard(shard_path(folder, k), dense=False)[1].num_rows for k in range(shards))


def new_dense_index(dim: int, kind: str, rows: int = 0) -> Any:
    """An empty faiss index of ``kind`` for ``dim``-dimensional inner-product search. ``ivfpq`` (for ``rows``
    vectors, trained before use) is an IVF-PQ index (4 sqrt(rows) inverted lists, one code per 8 dimensions: 48
    bytes a MiniLM vector; fewer bits a code below 256 rows) whose ``IVFPQ_K_FACTOR`` x k candidates are re-ranked
    exactly by the float rows stored beside it (``IndexRefineFlat``). The file is opened memory-mapped
    (``retrieval.searcher``): a search reads the codes of the lists it probes and the rows it re-ranks, and the
    index need not sit whole in RAM."""
    import faiss

    if kind == "ivfpq":
        nlist = max(1, min(int(round(4 * rows**0.5)), rows // 39 or 1))
        m = max(d for d in range(1, max(1, dim // 8) + 1) if dim % d == 0)
        nbits = max(1, min(8, int(np.log2(max(rows, 2)))))  # a small corpus has too few rows for 256 codes
        ivf = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, m, nbits, faiss.METRIC_INNER_PRODUCT)
        refine = faiss.IndexRefineFlat(ivf)
        refine.k_factor = IVFPQ_K_FACTOR
        return refine
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 200
        index.hnsw.efSearch = 128
        return index
    return faiss.IndexFlatIP(dim)
