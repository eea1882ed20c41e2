"""lsr.heap: after retain_freed_memory, a large buffer freed and allocated again comes back without page faults."""

from __future__ import annotations

import ctypes
import resource

import pytest

from lsr import heap


def faults_of_touching(size: int) -> int:
    """Minor page faults while malloc'ing size bytes, writing every page and freeing them."""
    libc = heap.glibc()
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    p = libc.malloc(size)
    assert p
    ctypes.memset(p, 1, size)
    libc.free(p)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(heap.glibc() is None, reason="glibc's mallopt only")
def test_freed_memory_is_reused_without_page_faults() -> None:
    assert heap.retain_freed_memory()
    assert heap.retain_freed_memory()  # once per process, then the same answer
    size = 24 << 20  # 6,144 pages: above glibc's default thresholds, below the fixed 32 MiB one
    faults_of_touching(size)  # the heap grows once
    second = faults_of_touching(size)
    assert second < 64, f"{second} page faults for memory the heap should have kept"
