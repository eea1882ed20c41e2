"""Metadata filters: a small expression language, its slow twin (one document at a time) and its fast form (column
indexes of a segment's metadata -> a bool mask over its rows, which the native search takes as a bitmap).

A filter is JSON:

    {"field": "lang", "eq": "en"}                     equality (strings, numbers, booleans)
    {"field": "lang", "in": ["en", "de"]}             any of the values
    {"field": "year", "gte": 2010, "lt": 2020}        numeric range: any of gt, gte, lt, lte
    {"and": [F, ...]}   {"or": [F, ...]}   {"not": F}

A document without the field (or with a value of another type) never matches a field test; ``not`` inverts the
whole test. Fields are top-level metadata keys. Booleans are not numbers here (``true`` does not equal ``1``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

RANGE_OPS = ("gt", "gte", "lt", "lte")
MAX_DEPTH = 16
MAX_VALUES = 1024


class FilterError(ValueError):
    """A filter that is not well formed; the message says where."""


@dataclass(frozen=True)
class Test:
    field: str
    eq: Any = None
    any_of: tuple = ()
    bounds: tuple = ()  # ((op, number), ...)


@dataclass(frozen=True)
class Node:
    op: str  # "and", "or", "not", "test"
    children: tuple = ()
    test: Test | None = None


def _scalar(v: Any, where: str) -> Any:
    if isinstance(v, (bool, str)):
        return v
    if isinstance(v, (int, float)) and math.isfinite(v):
        return float(v)
    raise FilterError(f"{where}: values are strings, finite numbers or booleans, not {v!r}")


def parse(raw: Any, where: str = "filter", depth: int = 0) -> Node:
    """Check a filter and return its tree; raises FilterError naming the bad part."""
    if depth > MAX_DEPTH:
        raise FilterError(f"{where}: nested deeper than {MAX_DEPTH}")
    if not isinstance(raw, Mapping):
        raise FilterError(f"{where}: a filter is an object")
    keys = set(raw)
    for op in ("and", "or"):
        if op in keys:
            if keys != {op} or not isinstance(raw[op], Sequence) or isinstance(raw[op], str) or not raw[op]:
                raise FilterError(f"{where}: '{op}' takes a non-empty list of filters and nothing beside it")
            return Node(op, tuple(parse(f, f"{where}.{op}[{i}]", depth + 1) for i, f in enumerate(raw[op])))
    if "not" in keys:
        if keys != {"not"}:
            raise FilterError(f"{where}: 'not' takes one filter and nothing beside it")
        return Node("not", (parse(raw["not"], f"{where}.not", depth + 1),))
    name = raw.get("field")
    if not isinstance(name, str) or not name:
        raise FilterError(f"{where}: a test names its 'field' (a metadata key)")
    ops = keys - {"field"}
    if ops == {"eq"}:
        return Node("test", test=Test(name, eq=_scalar(raw["eq"], f"{where}.eq")))
    if ops == {"in"}:
        vals = raw["in"]
        if not isinstance(vals, Sequence) or isinstance(vals, str) or not 0 < len(vals) <= MAX_VALUES:
            raise FilterError(f"{where}: 'in' takes a list of 1 to {MAX_VALUES} values")
        return Node("test", test=Test(name, any_of=tuple(_scalar(v, f"{where}.in") for v in vals)))
    if ops and ops <= set(RANGE_OPS):
        bounds = []
        for op in RANGE_OPS:
            if op in raw:
                v = raw[op]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise FilterError(f"{where}.{op}: a range bound is a finite number, not {v!r}")
                bounds.append((op, float(v)))
        return Node("test", test=Test(name, bounds=tuple(bounds)))
    raise FilterError(f"{where}: a test has 'field' and one of eq, in, or range bounds (gt, gte, lt, lte)")


def _key(v: Any) -> tuple:
    """Equality key: type and value (so that True never equals 1.0 and '1' never equals 1)."""
    if isinstance(v, bool):
        return ("b", v)
    if isinstance(v, (int, float)):
        return ("n", float(v))
    return ("s", v)


def _in_range(x: float, bounds: tuple) -> bool:
    for op, b in bounds:
        if (
            (op == "gt" and not x > b)
            or (op == "gte" and not x >= b)
            or (op == "lt" and not x < b)
            or (op == "lte" and not x <= b)
        ):
            return False
    return True


def matches(node: Node, metadata: Mapping | None) -> bool:
    """The slow twin: one document's metadata against the filter."""
    if node.op == "and":
        return all(matches(c, metadata) for c in node.children)
    if node.op == "or":
        return any(matches(c, metadata) for c in node.children)
    if node.op == "not":
        return not matches(node.children[0], metadata)
    t = node.test
    if not metadata or t.field not in metadata:
        return False
    v = metadata[t.field]
    if not isinstance(v, (str, bool, int, float)) or (isinstance(v, float) and not math.isfinite(v)):
        return False
    if t.bounds:
        return not isinstance(v, (bool, str)) and _in_range(float(v), t.bounds)
    if t.any_of:
        return _key(v) in {_key(x) for x in t.any_of}
    return _key(v) == _key(t.eq)


@dataclass
class MetadataColumns:
    """A segment's metadata, indexed by field: value -> rows (for eq / in) and a sorted numeric column (for
    ranges), so that a filter's mask costs a few dictionary lookups and binary searches, not a pass over JSON."""

    rows: int
    postings: dict[str, dict[tuple, np.ndarray]] = field(default_factory=dict)
    numbers: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # sorted values, their rows

    @classmethod
    def build(cls, rows: int, metadata: Sequence[tuple[int, Mapping | None]]) -> MetadataColumns:
        """From (row, metadata) pairs; rows without metadata match no field test."""
        lists: dict[str, dict[tuple, list[int]]] = {}
        nums: dict[str, list[tuple[float, int]]] = {}
        for row, m in metadata:
            for name, v in (m or {}).items():
                if not isinstance(v, (str, bool, int, float)) or (isinstance(v, float) and not math.isfinite(v)):
                    continue
                lists.setdefault(name, {}).setdefault(_key(v), []).append(row)
                if not isinstance(v, (bool, str)):
                    nums.setdefault(name, []).append((float(v), row))
        cols = cls(rows)
        cols.postings = {n: {k: np.asarray(r, np.int64) for k, r in d.items()} for n, d in lists.items()}
        for n, pairs in nums.items():
            pairs.sort()
            cols.numbers[n] = (np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs], np.int64))
        return cols

    def mask(self, node: Node) -> np.ndarray:
        """The rows that match ``node``, as a bool array."""
        if node.op == "and":
            out = np.ones(self.rows, bool)
            for c in node.children:
                out &= self.mask(c)
            return out
        if node.op == "or":
            out = np.zeros(self.rows, bool)
            for c in node.children:
                out |= self.mask(c)
            return out
        if node.op == "not":
            return ~self.mask(node.children[0])
        t = node.test
        out = np.zeros(self.rows, bool)
        if t.bounds:
            values, rows = self.numbers.get(t.field, (np.zeros(0), np.zeros(0, np.int64)))
            lo, hi = 0, len(values)
            for op, b in t.bounds:
                if op == "gt":
                    lo = max(lo, int(np.searchsorted(values, b, "right")))
                elif op == "gte":
                    lo = max(lo, int(np.searchsorted(values, b, "left")))
                elif op == "lt":
                    hi = min(hi, int(np.searchsorted(values, b, "left")))
                else:
                    hi = min(hi, int(np.searchsorted(values, b, "right")))
            if lo < hi:
                out[rows[lo:hi]] = True
            return out
        by_value = self.postings.get(t.field, {})
        for v in t.any_of or (t.eq,):
            r = by_value.get(_key(v))
            if r is not None:
                out[r] = True
        return out
