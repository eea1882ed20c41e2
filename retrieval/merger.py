"""Background merging: one thread that runs :meth:`LiveIndex.merge` steps after writes, so
upserts (one small segment each) never pile up into hundreds of segments."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from .live import AnyLiveIndex

logger = logging.getLogger(__name__)


class Merger:
    """Merges the indexes that ``indexes()`` returns whenever :meth:`poke` is called (after a
    write), and every ``interval`` seconds in case a poke came while it was busy."""

    def __init__(self, indexes: Callable[[], Iterable[AnyLiveIndex]], interval: float = 5.0) -> None:
        self._indexes = indexes
        self._interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.merges = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lsr-merger", daemon=True)
            self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Stop after the merge step under way (it commits or leaves nothing behind)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            for index in list(self._indexes()):
                while not self._stop.is_set():
                    try:
                        if not index.merge():
                            break
                        self.merges += 1
                    except Exception:  # noqa: BLE001 - a failed merge leaves the index as it was; retried later
                        logger.exception("%s: merge failed", index.path)
                        break
