"""The C heap kept for reuse during CPU inference, so activations are not page-faulted in anew on every batch.

glibc serves an allocation above its mmap threshold with a fresh mapping, and it returns free memory at
the top of a heap to the kernel once it exceeds the trim threshold. The mmap threshold starts at
128 KiB and only grows when such a mapping is freed, up to 32 MiB. A batch of 32 SPLADE-tiny passages
has 16 MiB of FFN activations per layer, and those pages come back from the kernel, page-faulted and
zeroed, on every batch. PyTorch's CPU tuning guide suggests jemalloc or tcmalloc for the same reason.

``retain_freed_memory`` fixes the mmap threshold at that 32 MiB ceiling and stops trimming (glibc's
``mallopt``), so freed activations stay in the heap for the next batch (tests/test_heap.py shows a
24 MiB buffer coming back without page faults). The setting is process-wide and permanent: resident
memory stays at its peak instead of shrinking after a large batch. Where the C library is not glibc,
this does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import threading

logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's ceiling for the dynamic threshold on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = (1 << 31) - 1  # an int; never reached in practice

_lock = threading.Lock()
_state: bool | None = None  # None: not tried yet; True: set; False: not glibc, or mallopt refused


def retain_freed_memory() -> bool:
    """Set glibc's heap to keep freed memory (once per process); True where it now does."""
    global _state
    with _lock:
        if _state is None:
            _state = _set()
        return _state


def glibc() -> ctypes.CDLL | None:
    """This process's C library where it is glibc (musl and macOS have no such mallopt parameters), else None."""
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def _set() -> bool:
    libc = glibc()
    if libc is None:
        logger.debug("not glibc: the C heap is left as it is")
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    logger.debug("glibc heap %s freed memory for reuse", "keeps" if ok else "refused to keep")
    return ok
