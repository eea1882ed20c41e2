"""A live index: documents can be upserted and deleted while it is searched, and every
change that returned survives a crash.

Layout of an index folder::

    catalog.sqlite          the commit point: settings, live segments, one row per live doc
    segments/seg-000001/    immutable, written before the catalog names it
        sparse/             our inverted index (indexer) over the segment's rows
        vectors.safetensors the float vectors: indptr, indices, values (+ dense)

Every upsert writes one new segment (published atomically), then one SQLite transaction
records the segment and points each doc id at its (segment, row). A doc's older row in
another segment becomes dead, a delete removes its catalog row. After a crash the catalog is
the truth: segment folders it does not name are removed on open, and the live rows of each
segment are the ones the catalog points at. Searches run over an immutable tuple of segments,
asking each for ``k`` plus its number of dead rows, so dead rows never cost a result.
:meth:`LiveIndex.merge` rewrites segments that are more than half dead, or the smallest
segments into one when there are more than ``MAX_SEGMENTS`` (``build_index`` over their live
float vectors, so nothing is quantised twice); :class:`retrieval.merger.Merger` runs it in the
background after writes. Segment files are memory-mapped, so a search or explanation holding
a segment that a merge just removed still reads it.

:class:`ShardedLiveIndex` (``sharded.py``) is N such indexes behind the same methods, documents routed by a hash
of their id, every shard on the index's fixed impact scale so that they score as one index.
"""

from ..vectors import map_tensors
from .catalog import CATALOG
from .index import SEGMENTS, IndexSpec, IndexStats, LiveIndex, StoredDoc
from .merge_policy import MAX_SEGMENTS, MERGE_COUNT, merge_plan
from .segment import VECTORS, Segment
from .sharded import SHARDS, AnyLiveIndex, ShardedLiveIndex, is_live, open_live

__all__ = [
    "AnyLiveIndex",
    "CATALOG",
    "MAX_SEGMENTS",
    "MERGE_COUNT",
    "SEGMENTS",
    "SHARDS",
    "VECTORS",
    "IndexSpec",
    "IndexStats",
    "LiveIndex",
    "Segment",
    "ShardedLiveIndex",
    "StoredDoc",
    "is_live",
    "map_tensors",
    "merge_plan",
    "open_live",
]
