"""LiveReader, a read replica of a live index, against its writer (LiveIndex) and a plain dict of what was written:
after every write it answers as the writer does, through merges that remove the segments it holds."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from live_model import DIM, OPERATIONS, SPEC, VOCAB, apply, check, churn, docs

from indexer import SparseBatch
from retrieval.live import LiveIndex
from retrieval.live.reader import LiveReader, ReadOnlyError
from retrieval.merger import Merger


def same_answers(reader: LiveReader, writer: LiveIndex, rng: np.random.Generator) -> None:
    assert reader.num_docs == writer.num_docs
    rows = [{int(t): float(w) for t, w in zip(rng.choice(VOCAB, 3, replace=False), rng.uniform(0.1, 2, 3))}
            for _ in range(4)]  # fmt: skip
    queries = SparseBatch.from_rows(rows)
    assert reader.search_sparse_batch(queries, k=7) == writer.search_sparse_batch(queries, k=7)
    v = rng.normal(size=(2, DIM)).astype(np.float32)
    assert reader.search_dense_batch(v, 5) == writer.search_dense_batch(v, 5)
    ids = [f"d{i}" for i in range(30)]
    assert reader.get(ids) == writer.get(ids)


@given(st.integers(0, 2**32 - 1), OPERATIONS)
def test_a_reader_answers_as_its_writer_after_every_write(tmp_path_factory, seed: int, ops) -> None:
    rng = np.random.default_rng(seed)
    path = tmp_path_factory.mktemp("live") / "idx"
    writer = LiveIndex.create(path, SPEC)
    reader = LiveReader.open(path)
    model: dict = {}
    for op, n in ops:
        apply(writer, op, n, rng, model)
        same_answers(reader, writer, rng)
    check(reader, model, np.random.default_rng(seed))
    assert {s.seq for s in reader.segments} == {s.seq for s in writer.segments}
    assert not reader.refresh()  # nothing committed since its last look
    writer.close()
    reader.close()


def test_a_reader_never_writes(tmp_path: Path) -> None:
    writer = LiveIndex.create(tmp_path / "idx", SPEC)
    batch, dense, _ = docs(np.random.default_rng(0), ["a", "b"])
    writer.upsert(["a", "b"], batch, dense)
    reader = LiveReader.open(tmp_path / "idx")
    for call in (lambda: reader.upsert(["c"], batch, dense), lambda: reader.delete(["a"]), reader.merge,
                 lambda: reader.copy_to(tmp_path / "copy")):  # fmt: skip
        with pytest.raises(ReadOnlyError, match="read replica"):
            call()
    assert reader.num_docs == writer.num_docs == 2
    with pytest.raises(FileNotFoundError, match="not a live index"):
        LiveReader.open(tmp_path / "nothing")


def test_a_damaged_segment_is_an_error_not_a_retry(tmp_path: Path) -> None:
    """A segment that fails to open while no commit followed the snapshot is damage: raised at once (a segment
    half removed by a merge, with the merge's commit there, is read again instead: the concurrent test)."""
    from indexer.errors import CorruptIndexError

    writer = LiveIndex.create(tmp_path / "idx", SPEC)
    reader = LiveReader.open(tmp_path / "idx")
    for name in ("a", "b"):
        batch, dense, _ = docs(np.random.default_rng(0), [name])
        writer.upsert([name], batch, dense)
    (writer.segments[0].path / "sparse" / "docids.bin").unlink()
    with pytest.raises(CorruptIndexError, match="docids.bin"):
        reader.refresh()


def test_readers_keep_answering_through_concurrent_writes_and_merges(tmp_path: Path) -> None:
    """Writers, a background merger that removes merged segments' folders, and two readers searching meanwhile:
    no reader fails, and each ends with the writer's state."""
    writer = LiveIndex.create(tmp_path / "idx", SPEC)
    merger = Merger(lambda: [writer], interval=0.01)
    merger.start()
    readers = [LiveReader.open(tmp_path / "idx") for _ in range(2)]
    written: dict = {}
    lock = threading.Lock()
    errors: list[BaseException] = []
    stop = threading.Event()

    def write(w: int) -> None:
        try:
            churn(writer, w, written, lock, merger.poke)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    def read(reader: LiveReader) -> None:
        rng = np.random.default_rng(7)
        try:
            while not stop.is_set():
                hits, _ = reader.search_sparse(np.array([1, 2, 3], np.uint32), np.ones(3, np.float32), k=10)
                assert len({d for d, _ in hits}) == len(hits)
                reader.search_dense(rng.normal(size=DIM).astype(np.float32), 3)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    writers = [threading.Thread(target=write, args=(w,)) for w in range(3)]
    searchers = [threading.Thread(target=read, args=(r,)) for r in readers]
    for t in writers + searchers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in searchers:
        t.join()
    merger.stop()
    assert not errors, errors
    assert merger.merges > 0
    for i, reader in enumerate(readers):
        check(reader, written, np.random.default_rng(i))
        same_answers(reader, writer, np.random.default_rng(i))
