"""Block codec, top-k queue and checksum against obvious Python twins."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexer import _core


@given(st.integers(1, 128), st.integers(0, 32), st.integers(0, 2**32 - 1))
def test_pack_unpack_roundtrip(n: int, bits: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    hi = 1 << bits
    values = rng.integers(0, hi, size=n, dtype=np.uint64).astype(np.uint32)
    if bits and n:
        values[rng.integers(0, n)] = hi - 1  # the widest value always appears
    packed = _core.testing.pack_block(values, bits)
    assert len(packed) == (16 * bits if n == 128 else (n * bits + 7) // 8)
    np.testing.assert_array_equal(_core.testing.unpack_block(packed, n, bits), values)


def test_vertical_layout_is_the_documented_one() -> None:
    # value i lives in lane i % 4, row i // 4; word w of lane j is at w * 4 + j.
    values = np.arange(128, dtype=np.uint32)
    packed = np.frombuffer(_core.testing.pack_block(values, 7), dtype="<u4")
    expect = np.zeros(28, dtype=np.uint64)
    for i, v in enumerate(values.tolist()):
        lane, row = i % 4, i // 4
        bit = row * 7
        w, s = divmod(bit, 32)
        expect[w * 4 + lane] |= (v << s) & 0xFFFFFFFF
        if s + 7 > 32:
            expect[(w + 1) * 4 + lane] |= v >> (32 - s)
    np.testing.assert_array_equal(packed, expect.astype(np.uint32))


def test_pack_rejects_values_wider_than_bits() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        _core.testing.pack_block(np.array([8], dtype=np.uint32), 3)
    with pytest.raises(ValueError, match="wrong packed size"):
        _core.testing.unpack_block(b"\x00", 128, 3)


@given(st.lists(st.integers(0, 20), max_size=300), st.integers(1, 50))
def test_topk_queue_matches_sorting(scores: list[int], k: int) -> None:
    docs = np.random.default_rng(len(scores)).permutation(len(scores)).astype(np.uint32)
    s = np.asarray(scores, dtype=np.uint32)
    got_scores, got_docs = _core.testing.topk_select(s, docs, k)
    expect = sorted(((-sc, d) for sc, d in zip(scores, docs.tolist()) if sc > 0))[:k]
    assert list(zip((-got_scores.astype(np.int64)).tolist(), got_docs.tolist())) == expect


@given(st.binary(max_size=200))
def test_xxh64_matches_reference_implementation(data: bytes) -> None:
    xxhash = pytest.importorskip("xxhash")
    assert _core.testing.xxh64(data) == xxhash.xxh64_intdigest(data)


@given(st.binary(max_size=300), st.integers(1, 70))
def test_streamed_xxh64_matches_one_shot(data: bytes, chunk: int) -> None:
    """The writer hashes DATA as it streams it out, in pieces of any size."""
    xxhash = pytest.importorskip("xxhash")
    assert _core.testing.xxh64(data, chunk) == xxhash.xxh64_intdigest(data)
