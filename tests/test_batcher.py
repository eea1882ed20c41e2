"""The micro-batcher against its slow twin: each query encoded alone."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("torch")

from test_encoders import as_dicts, assert_same, make, texts_st  # noqa: E402

from indexer import SparseBatch  # noqa: E402
from retrieval.batcher import Batcher  # noqa: E402

ENC = make("mlm")


def encode_rows(texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    batch = ENC.encode_queries(texts)
    return [batch.row(i) for i in range(len(texts))]


@settings(max_examples=15, deadline=None)
@given(texts_st.filter(bool), st.integers(1, 8))
def test_concurrent_queries_get_their_own_vectors(texts: list[str], max_batch: int) -> None:
    batcher = Batcher(encode_rows, max_batch=max_batch)
    got: list = [None] * len(texts)
    gate = threading.Barrier(len(texts))

    def one(i: int) -> None:
        gate.wait()  # all submit at once, so batches form
        got[i] = batcher(texts[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    alone = [ENC.encode_queries([t]) for t in texts]  # the slow twin: one query per call
    assert_same(
        as_dicts(SparseBatch.from_rows([dict(zip(i.tolist(), v.tolist())) for i, v in got])),
        [as_dicts(a)[0] for a in alone],
    )
    assert batcher.items == len(texts) and batcher.calls <= len(texts)


def test_a_bad_item_fails_only_its_own_call() -> None:
    def fn(items: list[int]) -> list[int]:
        if 13 in items:
            raise ValueError("unlucky")
        return [i * 2 for i in items]

    batcher = Batcher(fn, max_batch=16)
    results: dict[int, object] = {}
    gate = threading.Barrier(20)

    def one(i: int) -> None:
        gate.wait()
        try:
            results[i] = batcher(i)
        except ValueError as e:
            results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert isinstance(results.pop(13), ValueError)
    assert results == {i: i * 2 for i in range(20) if i != 13}


def test_calls_queued_while_the_model_is_busy_go_in_one_batch() -> None:
    busy, release = threading.Event(), threading.Event()
    sizes: list[int] = []

    def fn(items: list[int]) -> list[int]:
        sizes.append(len(items))
        busy.set()
        release.wait(10)
        return items

    batcher = Batcher(fn, max_batch=3)
    threads = [threading.Thread(target=batcher, args=(0,))]
    threads[0].start()
    busy.wait(10)  # the first call is being served; the next five queue up
    threads += [threading.Thread(target=batcher, args=(i,)) for i in range(1, 6)]
    for t in threads[1:]:
        t.start()
    while len(batcher._queue) < 5:
        threading.Event().wait(0.01)
    release.set()
    for t in threads:
        t.join()
    assert sizes == [1, 3, 2]
