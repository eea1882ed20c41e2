"""Fusion against hand-computed examples and the obvious per-document formulas on random runs."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrieval.fusion import Fusion, fuse, grid

docs = st.sampled_from([f"d{i}" for i in range(12)])
scores = st.floats(-50, 50, allow_nan=False, allow_infinity=False)
one_query_run = st.dictionaries(docs, scores, min_size=0, max_size=12)
runs2 = st.tuples(
    st.dictionaries(st.sampled_from(["q1", "q2", "q3"]), one_query_run, max_size=3),
    st.dictionaries(st.sampled_from(["q1", "q2", "q3"]), one_query_run, max_size=3),
)


def naive(runs: tuple[dict, ...], f: Fusion, k: int) -> dict:
    """Straight from the definitions, one document at a time."""
    out = {}
    for q in set().union(*runs):
        total: dict[str, float] = {}
        for run, w in zip(runs, f.weights):
            s = run.get(q, {})
            if not s or w == 0:
                continue
            vals = list(s.values())
            n, mean = len(vals), sum(vals) / len(vals)
            sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / n)
            for d, v in s.items():
                if f.method == "rrf":
                    rank = 1 + sum(1 for e, u in s.items() if u > v or (u == v and e < d))
                    part = 1 / (f.rrf_k + rank)
                elif f.method == "dbsf":
                    part = 1.0 if sd == 0 else (v - (mean - 3 * sd)) / (6 * sd)
                elif f.norm == "minmax":
                    lo, hi = min(vals), max(vals)
                    part = 1.0 if hi == lo else (v - lo) / (hi - lo)
                else:
                    part = 0.0 if sd == 0 else (v - mean) / sd
                total[d] = total.get(d, 0.0) + w * part
        ranked = sorted(total, key=lambda d: (-total[d], d))[:k]
        out[q] = {d: total[d] for d in ranked}
    return out


@settings(max_examples=150)
@given(
    runs=runs2,
    method=st.sampled_from(["rrf", "linear", "dbsf"]),
    norm=st.sampled_from(["minmax", "zscore"]),
    w=st.tuples(st.sampled_from([0.0, 0.5, 1.0, 2.0]), st.sampled_from([0.0, 0.3, 1.0])),
    rrf_k=st.sampled_from([0.0, 1.0, 60.0]),
    k=st.integers(1, 15),
)
def test_matches_the_definitions(runs, method, norm, w, rrf_k, k) -> None:  # noqa: ANN001
    f = Fusion(method, w, rrf_k, norm)
    got, want = fuse(runs, f, k), naive(runs, f, k)
    assert list(got) == sorted(want)
    for q in want:
        assert list(got[q]) == list(want[q])
        for d in got[q]:
            assert math.isclose(got[q][d], want[q][d], rel_tol=1e-9, abs_tol=1e-12)


def test_rrf_by_hand() -> None:
    a = {"q": {"x": 3.0, "y": 2.0, "z": 1.0}}
    b = {"q": {"z": 0.9, "x": 0.5}}
    got = fuse([a, b], Fusion("rrf", (1.0, 1.0), rrf_k=60), k=3)["q"]
    assert got == pytest.approx({"x": 1 / 61 + 1 / 62, "z": 1 / 63 + 1 / 61, "y": 1 / 62})
    assert list(got) == ["x", "z", "y"]


def test_linear_minmax_by_hand_and_invariance() -> None:
    a = {"q": {"x": 10.0, "y": 5.0, "z": 0.0}}
    b = {"q": {"y": 1.0, "z": 0.0}}
    got = fuse([a, b], Fusion("linear", (1.0, 2.0), norm="minmax"), k=3)["q"]
    assert got == pytest.approx({"x": 1.0, "y": 0.5 + 2.0, "z": 0.0})
    shifted = {"q": {d: 3 * s + 7 for d, s in a["q"].items()}}  # min-max ignores positive affine maps
    assert fuse([shifted, b], Fusion("linear", (1.0, 2.0)), k=3)["q"] == pytest.approx(got)


def test_zero_weight_drops_a_source_and_bad_settings_raise() -> None:
    a = {"q": {"x": 1.0, "y": 2.0}}
    b = {"q": {"z": 5.0}}
    assert list(fuse([a, b], Fusion("rrf", (1.0, 0.0)), k=5)["q"]) == ["y", "x"]
    for bad in (
        Fusion("nope"),
        Fusion(weights=(1.0,)),
        Fusion(weights=(1.0, -1.0)),
        Fusion(norm="l2"),
        Fusion(rrf_k=float("nan")),
    ):
        with pytest.raises(ValueError):
            fuse([a, b], bad)


def test_grid_covers_each_method() -> None:
    for m in ("rrf", "linear", "dbsf"):
        assert grid(m) and all(f.method == m for f in grid(m))
    with pytest.raises(ValueError):
        grid("max")
