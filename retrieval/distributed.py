"""Corpus encoding on a Ray cluster: ``lsr index CORPUS --out DIR --ray ADDRESS`` (the ``ray`` extra).

The same collection folder as the single-machine job (``collection.build``), built the same way:

1. the driver checks the job, scans the input once (malformed records reported with file and line, duplicate
   ids refused) and notes where each shard's records start;
2. Ray Data maps the shards still missing over a pool of encoder actors (each loads the sparse and dense
   encoders once, on a GPU when ``device`` is CUDA); an actor reads its shard's records itself, from where the
   scan said they start, and encodes them;
3. the driver writes each encoded shard as it arrives (atomically, so a run stopped anywhere resumes with the
   shards still missing, as the single-machine job does) and, once every shard is there, builds the indexes.

The input must be readable at the same path on every node (shared storage, as Ray Data's own readers need);
the output folder only on the driver: shards travel back through Ray's object store.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .collection import (
    BuildStats,
    Job,
    encode_docs,
    finish,
    load_encoders,
    prepare,
    scan,
    shard_docs,
    shard_path,
    shard_rows,
    write_shard,
)
from .corpus import Span

logger = logging.getLogger(__name__)


class ShardEncoder:
    """A Ray Data actor: loads the encoders once, then encodes whole shards (one per row of its batches)."""

    def __init__(self, job: bytes, device: str, batch_size: int) -> None:
        self.job = Job.from_json(job)
        self.batch_size = batch_size
        self.sparse, self.dense = load_encoders(self.job.sparse_model, self.job.dense_model, device)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        out: dict[str, list] = {"shard": [], "payload": [], "rows": [], "vocab_size": [], "vocab_hash": []}
        for k, line, byte, rows in zip(batch["shard"], batch["line"], batch["byte"], batch["rows"]):
            docs = shard_docs(self.job, Span(int(line), int(byte)), int(rows))
            if len(docs) != int(rows):
                raise RuntimeError(f"{self.job.input}: shard {k} has {len(docs)} records, the scan counted {rows}")
            sparse, dense = encode_docs(docs, self.sparse, self.dense, self.batch_size)
            with tempfile.TemporaryDirectory() as tmp:  # the shard file's bytes, written by the one writer
                path = Path(tmp) / "shard.safetensors"
                write_shard(path, [d.id for d in docs], sparse, dense, [d.metadata for d in docs])
                payload = path.read_bytes()
            out["shard"].append(int(k))
            out["payload"].append(payload)
            out["rows"].append(len(docs))
            out["vocab_size"].append(int(self.sparse.vocab_size))
            out["vocab_hash"].append(str(self.sparse.vocab_hash))
        return out


def build_on_ray(
    folder: str | Path,
    job: Job,
    *,
    address: str | None = "auto",
    workers: int = 1,
    device: str = "cpu",
    batch_size: int = 32,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> BuildStats:
    """``collection.build`` with the encoding spread over ``workers`` Ray actors (one GPU each when ``device`` is
    CUDA). ``address``: a running cluster (``auto``, ``ray://host:10001``, ``host:6379``), or None for a local Ray
    started here. The result is the same folder, byte for byte in its indexes, as the single-machine job's."""
    import ray

    from indexer.atomic import write_bytes

    folder = Path(folder)
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    job, done = prepare(folder, job, overwrite)
    if done is not None:
        return done
    sc = scan(job)
    stats = sc.stats()
    total = len(sc.starts)
    todo = [k for k in range(total) if not shard_path(folder, k).exists()]
    done_records = sum(shard_rows(sc.records, job.shard_size, k) for k in range(total) if k not in todo)
    if len(todo) < total:
        logger.info("resuming: %d of %d shards already encoded", total - len(todo), total)
    vocab: tuple[int, str] | None = None
    t0 = time.perf_counter()
    if todo:
        if not ray.is_initialized():
            ray.init(address=address, log_to_driver=False, include_dashboard=False)
        items = [
            {"shard": k, "line": sc.starts[k].line, "byte": sc.starts[k].byte,
             "rows": shard_rows(sc.records, job.shard_size, k)}
            for k in todo
        ]  # fmt: skip
        gpu = device.startswith("cuda")
        ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            ShardEncoder,
            fn_constructor_kwargs={"job": job.to_json(), "device": "cuda" if gpu else device,
                                   "batch_size": batch_size},
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=min(workers, len(items))),
            num_gpus=1 if gpu else 0,
        )  # fmt: skip
        shard_path(folder, 0).parent.mkdir(parents=True, exist_ok=True)
        for row in ds.iter_rows():
            k = int(row["shard"])
            write_bytes(shard_path(folder, k), bytes(row["payload"]))
            vocab = (int(row["vocab_size"]), str(row["vocab_hash"]))
            stats.shards_encoded += 1
            done_records += int(row["rows"])
            if progress:
                progress(done_records, sc.records)
    stats.encode_seconds = time.perf_counter() - t0
    if vocab is None:  # every shard was there already: the vocabulary comes from the encoder's own files
        sparse, _ = load_encoders(job.sparse_model, None)
        vocab = (sparse.vocab_size, sparse.vocab_hash)
    return finish(folder, job, stats, max(total, 1), *vocab)
