"""Which segments one merge step rewrites."""

from __future__ import annotations

from collections.abc import Sequence

from .segment import Segment

MAX_SEGMENTS = 16
MERGE_COUNT = 8


def merge_plan(segments: Sequence[Segment], max_segments: int, count: int) -> list[Segment]:
    """The segments one merge step rewrites: every segment that is more than half dead (they
    slow searches, which over-fetch dead rows), else the ``count`` smallest when there are more
    than ``max_segments``; nothing otherwise."""
    expunge = [s for s in segments if 2 * s.dead > s.rows]
    if expunge:
        return expunge
    if len(segments) <= max_segments:
        return []
    return sorted(segments, key=lambda s: s.rows - s.dead)[:count]
