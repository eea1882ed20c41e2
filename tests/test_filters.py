"""Metadata filters: the column index's mask against the one-document-at-a-time twin (hypothesis), and refusals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrieval.filters import FilterError, MetadataColumns, matches, parse

FIELDS = ["lang", "year", "ok", "score"]
values = st.one_of(
    st.sampled_from(["en", "de", "fr", "1"]), st.integers(-3, 3), st.sampled_from([0.5, 1.0, 2.5]), st.booleans()
)
metadata = st.one_of(st.none(), st.dictionaries(st.sampled_from(FIELDS), values, max_size=4))
bound = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, 1.5]))
tests = st.one_of(
    st.builds(lambda f, v: {"field": f, "eq": v}, st.sampled_from(FIELDS), values),
    st.builds(lambda f, vs: {"field": f, "in": vs}, st.sampled_from(FIELDS), st.lists(values, min_size=1, max_size=4)),
    st.builds(
        lambda f, b: {"field": f, **b},
        st.sampled_from(FIELDS),
        st.dictionaries(st.sampled_from(["gt", "gte", "lt", "lte"]), bound, min_size=1),
    ),
)
filters = st.recursive(
    tests,
    lambda inner: st.one_of(
        st.builds(lambda fs: {"and": fs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda fs: {"or": fs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda f: {"not": f}, inner),
    ),
    max_leaves=8,
)


@settings(max_examples=300)
@given(st.lists(metadata, min_size=0, max_size=40), filters)
def test_column_masks_equal_the_naive_twin(docs: list, raw: dict) -> None:
    node = parse(raw)
    cols = MetadataColumns.build(len(docs), list(enumerate(docs)))
    want = np.array([matches(node, m) for m in docs], dtype=bool)
    np.testing.assert_array_equal(cols.mask(node), want)


def test_by_hand() -> None:
    docs = [{"lang": "en", "year": 2012}, {"lang": "de", "year": 2019.5}, {"lang": "en"}, None, {"year": True}]
    cols = MetadataColumns.build(5, list(enumerate(docs)))

    def rows(raw: dict) -> list[int]:
        return np.flatnonzero(cols.mask(parse(raw))).tolist()

    assert rows({"field": "lang", "eq": "en"}) == [0, 2]
    assert rows({"field": "year", "gte": 2012, "lt": 2020}) == [0, 1]
    assert rows({"field": "year", "eq": 1}) == []  # true is not 1
    assert rows({"and": [{"field": "lang", "in": ["en", "de"]}, {"field": "year", "gt": 2015}]}) == [1]
    assert rows({"not": {"field": "lang", "eq": "en"}}) == [1, 3, 4]
    assert rows({"or": [{"field": "year", "lte": 2012}, {"field": "lang", "eq": "de"}]}) == [0, 1]


@pytest.mark.parametrize(
    "raw, message",
    [
        ([], "is an object"),
        ({"field": "x"}, "one of eq, in"),
        ({"field": "x", "eq": [1]}, "values are strings"),
        ({"field": "x", "eq": float("nan")}, "values are strings"),
        ({"field": "x", "in": []}, "'in' takes a list"),
        ({"field": "x", "gt": "a"}, "finite number"),
        ({"field": "x", "gt": True}, "finite number"),
        ({"field": "x", "eq": 1, "gt": 0}, "one of eq, in"),
        ({"and": []}, "non-empty list"),
        ({"and": [{"field": "x", "eq": 1}], "or": []}, "nothing beside"),
        ({"not": {"field": 3, "eq": 1}}, "filter.not: a test names"),
        ({"eq": 1}, "names its 'field'"),
    ],
)
def test_malformed_filters_are_refused_with_where(raw: object, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        parse(raw)


def test_depth_is_bounded() -> None:
    raw: dict = {"field": "x", "eq": 1}
    for _ in range(20):
        raw = {"not": raw}
    with pytest.raises(FilterError, match="deeper"):
        parse(raw)
