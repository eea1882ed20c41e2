"""Document-id strings: internal doc numbers 0..N-1 <-> external ids.

File ``docids.bin``: magic ``LSRDOCS1``, u64 count, u64 offsets[count + 1],
then the UTF-8 bytes of all ids. Memory-mapped on open.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .errors import CorruptIndexError

MAGIC = b"LSRDOCS1"


def encode_lexicon(ids: Sequence[str]) -> bytes:
    blobs = [i.encode("utf-8") for i in ids]
    offsets = np.zeros(len(blobs) + 1, dtype="<u8")
    np.cumsum([len(b) for b in blobs], out=offsets[1:])
    return MAGIC + np.uint64(len(blobs)).astype("<u8").tobytes() + offsets.tobytes() + b"".join(blobs)


class Lexicon:
    """Read-only, memory-mapped mapping between doc numbers and id strings."""

    def __init__(self, path: Path) -> None:
        size = path.stat().st_size
        if size < 16:
            raise CorruptIndexError(f"{path}: truncated lexicon ({size} bytes)")
        raw = np.memmap(path, dtype=np.uint8, mode="r")
        if bytes(raw[:8]) != MAGIC:
            raise CorruptIndexError(f"{path}: not a lexicon file (bad magic)")
        count = int(raw[8:16].view("<u8")[0])
        end_offsets = 16 + 8 * (count + 1)
        if end_offsets > size:
            raise CorruptIndexError(f"{path}: truncated lexicon (offsets)")
        self._offsets = raw[16:end_offsets].view("<u8")
        self._blob = raw[end_offsets:]
        if int(self._offsets[0]) != 0 or int(self._offsets[-1]) != self._blob.shape[0]:
            raise CorruptIndexError(f"{path}: lexicon offsets do not match its size")
        if count and np.any(np.diff(self._offsets.astype(np.int64)) < 0):
            raise CorruptIndexError(f"{path}: lexicon offsets are not monotone")
        self._count = count
        self._lookup: dict[str, int] | None = None

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, doc: int) -> str:
        if not 0 <= doc < self._count:
            raise IndexError(f"doc number {doc} out of range (0..{self._count - 1})")
        lo, hi = int(self._offsets[doc]), int(self._offsets[doc + 1])
        return bytes(self._blob[lo:hi]).decode("utf-8")

    def ids(self, docs: Iterable[int]) -> list[str]:
        return [self[int(d)] for d in docs]

    def number(self, doc_id: str) -> int:
        """Internal number of an external id; ``KeyError`` if unknown."""
        if self._lookup is None:
            self._lookup = {self[i]: i for i in range(self._count)}
        try:
            return self._lookup[doc_id]
        except KeyError:
            raise KeyError(f"unknown document id {doc_id!r}") from None
