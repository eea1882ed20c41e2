"""The training set on disk and the batches drawn from it.

A training-set folder (written by ``retrieval.trainset``, ``lsr trainset``) is self-contained:

    train.parquet   one row per query: qid, query, source ("train": real supervision, "pseudo": generated),
                    doc_ids (positives first, then candidates in the teacher's order), label (1 = positive),
                    and one list of teacher scores per teacher (bm25, splade, dense; NaN where missing)
    docs.parquet    id, text of every document the rows name
    manifest.json   counts, checksums, generator settings, time per step

Sampling is a pure function of (seed, epoch, row): an epoch is a seeded permutation of the rows, and each
query's group (one positive, then negatives from the top candidates) is drawn with a generator seeded by
(seed, epoch, row). A resumed run therefore sees exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.manifest import sha256_file

TRAIN_FILE = "train.parquet"
DOCS_FILE = "docs.parquet"
MANIFEST = "manifest.json"
TEACHER_COLUMNS = ("bm25", "splade", "dense", "model")  # model: a trained encoder of ours (add_model_teacher)
REQUIRED = ("qid", "query", "source", "doc_ids", "label")


@dataclass
class Group:
    """One query with its sampled documents: ``doc_ids[0]`` is the positive."""

    qid: str
    query: str
    doc_ids: list[str]
    teachers: dict[str, np.ndarray]  # name -> (G,) float32 (label included as a 0/1 teacher)


@dataclass
class Batch:
    queries: list[str]
    docs: list[str]  # B * G texts, query b's group at [b*G, (b+1)*G)
    teachers: dict[str, np.ndarray]  # name -> (B, G) float32
    group_size: int
    doc_ids: list[str]  # the ids of ``docs``


class TrainSet:
    def __init__(self, rows: list[dict], docs: dict[str, str], manifest: dict) -> None:
        self.rows = rows
        self.docs = docs
        self.manifest = manifest

    @classmethod
    def load(cls, folder: str | Path, sources: list[str] | None = None) -> TrainSet:
        import pyarrow as pa
        import pyarrow.parquet as pq

        folder = Path(folder)
        for name in (TRAIN_FILE, DOCS_FILE, MANIFEST):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder}: no {name}; build a training set with `lsr trainset`")
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
            table = pq.read_table(folder / TRAIN_FILE)
            docs_table = pq.read_table(folder / DOCS_FILE)
        except (pa.ArrowInvalid, OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{folder}: damaged training set: {e}") from None
        missing = [c for c in REQUIRED if c not in table.column_names]
        if missing:
            raise ValueError(f"{folder / TRAIN_FILE}: missing column(s) {missing}")
        if not {"id", "text"} <= set(docs_table.column_names):
            raise ValueError(f"{folder / DOCS_FILE}: needs columns id and text")
        for name, want in manifest.get("sha256", {}).items():
            if (folder / name).is_file() and sha256_file(folder / name) != want:
                raise ValueError(f"{folder / name}: checksum does not match the manifest (file changed or damaged)")
        rows = table.to_pylist()
        if sources is not None:
            rows = [r for r in rows if r["source"] in sources]
        docs = dict(zip(docs_table.column("id").to_pylist(), docs_table.column("text").to_pylist()))
        for r in rows:
            if len(r["doc_ids"]) != len(r["label"]) or not any(r["label"]):
                raise ValueError(f"{folder / TRAIN_FILE}: query {r['qid']!r} has no positive or mismatched lists")
            for d in r["doc_ids"]:
                if d not in docs:
                    raise ValueError(f"{folder / DOCS_FILE}: document {d!r} named by query {r['qid']!r} is missing")
        if not rows:
            raise ValueError(f"{folder}: no training queries" + (f" from sources {sources}" if sources else ""))
        return cls(rows, docs, manifest)

    def __len__(self) -> int:
        return len(self.rows)

    def group(self, i: int, group_size: int, depth: int, rng: np.random.Generator) -> Group:
        r = self.rows[i]
        label = np.asarray(r["label"], dtype=np.int8)
        pos = np.flatnonzero(label == 1)
        neg = np.flatnonzero(label == 0)[:depth]
        chosen = [int(rng.choice(pos))]
        if group_size > 1 and len(neg):
            take = min(group_size - 1, len(neg))
            chosen += [int(x) for x in np.sort(rng.choice(neg, size=take, replace=False))]
        # a query with too few negatives repeats its last one (a repeated document changes no softmax ranking)
        while len(chosen) < group_size:
            chosen.append(chosen[-1])
        teachers = {"label": label[chosen].astype(np.float32)}
        for name in TEACHER_COLUMNS:
            if name in r and r[name] is not None:
                teachers[name] = np.asarray(r[name], dtype=np.float32)[chosen]
        return Group(r["qid"], r["query"], [r["doc_ids"][c] for c in chosen], teachers)

    def steps_per_epoch(self, batch_size: int) -> int:
        return len(self.rows) // batch_size  # the last partial batch is dropped (equal-size in-batch negatives)

    def batches(
        self, seed: int, epoch: int, start: int, batch_size: int, group_size: int, depth: int
    ) -> Iterator[tuple[int, Batch]]:
        """(index, batch) for batches ``start..`` of ``epoch``; a pure function of its arguments."""
        order = np.random.default_rng([seed, epoch]).permutation(len(self.rows))
        for k in range(start, self.steps_per_epoch(batch_size)):
            groups = [
                self.group(int(i), group_size, depth, np.random.default_rng([seed, epoch, int(i)]))
                for i in order[k * batch_size : (k + 1) * batch_size]
            ]
            names = set.intersection(*(set(g.teachers) for g in groups))
            yield (
                k,
                Batch(
                    queries=[g.query for g in groups],
                    docs=[self.docs[d] for g in groups for d in g.doc_ids],
                    teachers={n: np.stack([g.teachers[n] for g in groups]) for n in sorted(names)},
                    group_size=group_size,
                    doc_ids=[d for g in groups for d in g.doc_ids],
                ),
            )


def write(folder: str | Path, rows: list[dict], docs: dict[str, str], manifest: dict) -> Path:
    """Write a training-set folder atomically: train.parquet, docs.parquet (only the documents the rows name), and
    manifest.json with counts and the files' SHA-256 added to ``manifest``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from indexer.atomic import staged

    final = Path(folder)
    with staged(final, overwrite=True) as work:
        schema = pa.schema(
            [
                ("qid", pa.string()),
                ("query", pa.string()),
                ("source", pa.string()),
                ("doc_ids", pa.list_(pa.string())),
                ("label", pa.list_(pa.int8())),
            ]
            + [(name, pa.list_(pa.float32())) for name in TEACHER_COLUMNS]
        )
        cols = {f.name: [r.get(f.name) for r in rows] for f in schema}
        pq.write_table(pa.table(cols, schema=schema), work / TRAIN_FILE)
        named = sorted({d for r in rows for d in r["doc_ids"]})
        pq.write_table(pa.table({"id": named, "text": [docs[d] for d in named]}), work / DOCS_FILE)
        manifest = dict(manifest)
        manifest["counts"] = {
            **manifest.get("counts", {}),
            "queries": len(rows),
            "documents": len(named),
            "by_source": {s: sum(r["source"] == s for r in rows) for s in sorted({r["source"] for r in rows})},
        }
        manifest["sha256"] = {name: sha256_file(work / name) for name in (TRAIN_FILE, DOCS_FILE)}
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return final
