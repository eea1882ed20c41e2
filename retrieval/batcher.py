"""Micro-batching: concurrent single-item calls (one query each, from the service's worker
threads) are coalesced into one batched call of the model.

A transformer encodes 16 short queries in about the time of three single ones, and one
caller in torch at a time keeps concurrent requests from fighting over the cores. No call
waits for company: a call that finds the model free runs at once, and batches grow only
while the model is busy. There is no thread of its own: the caller that finds no batch
under way leads, serving queued items (its own among them) until its own is done.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """``batcher(item)`` returns ``fn([.., item, ..])[i]``; ``fn`` maps a list to a list of
    the same length. If a batch raises, its items are retried one by one, so a bad item
    fails only its own call."""

    def __init__(self, fn: Callable[[list[T]], Sequence[R]], max_batch: int = 64) -> None:
        self._fn = fn
        self._max_batch = max_batch
        self._queue: deque[tuple[T, Future]] = deque()
        self._cond = threading.Condition()
        self._leading = False
        self.calls = 0  # batched calls of fn
        self.items = 0

    def __call__(self, item: T) -> R:
        future: Future = Future()
        with self._cond:
            self._queue.append((item, future))
            while self._leading and not future.done():
                self._cond.wait()
            if future.done():
                return future.result()
            self._leading = True
        try:
            while not future.done():
                with self._cond:
                    batch = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
                self._serve(batch)
                with self._cond:
                    self._cond.notify_all()  # followers whose items were served
        finally:
            with self._cond:
                self._leading = False
                self._cond.notify_all()  # one of the rest leads next
        return future.result()

    def _serve(self, batch: list[tuple[T, Future]]) -> None:
        items = [item for item, _ in batch]
        try:
            out = self._fn(items)
            if len(out) != len(items):
                raise RuntimeError(f"the batched function returned {len(out)} results for {len(items)} items")
            self.calls += 1
            self.items += len(items)
            for (_, future), result in zip(batch, out):
                future.set_result(result)
        except Exception as e:  # noqa: BLE001 - handed to the callers
            if len(batch) == 1:
                batch[0][1].set_exception(e)
                return
            logger.warning("a batch of %d failed (%s); retrying one by one", len(batch), e)
            for one in batch:
                self._serve([one])
