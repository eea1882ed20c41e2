"""Index: the reader. Opens a published index directory (memory-mapped,
fully verified) and answers exact top-k queries."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import _core
from .csr import SparseBatch
from .errors import CorruptIndexError, VocabularyMismatchError
from .lexicon import Lexicon
from .manifest import LEXICON, POSTINGS, Manifest

ALGORITHMS = ("exhaustive", "block_max", "block_forward", "auto")  # how Index.search_batch visits the postings
AUTO_BLOCK_DOCS = 8  # "auto": block_forward over 8-document blocks, handing a query to exhaustive search when cheaper
ALGORITHM_ENV = "LSR_SEARCH_ALGORITHM"  # the process's default algorithm (unset: exhaustive)


def default_algorithm() -> str:
    """The algorithm a search without one uses: ``$LSR_SEARCH_ALGORITHM``, else ``"exhaustive"`` (set by ``lsr
    search --algorithm`` and the service's ``search_algorithm`` setting, so that every index opened in the process,
    collection shards and live segments alike, searches the same way)."""
    name = os.environ.get(ALGORITHM_ENV, "exhaustive")
    if name not in ALGORITHMS:
        raise ValueError(f"{ALGORITHM_ENV}={name!r} is not an algorithm; choose one of {ALGORITHMS}")
    return name


class Hit(NamedTuple):
    doc_id: str
    score: float


class BatchResults(NamedTuple):
    """Top-k of each query. ``docs`` are internal doc numbers (``-1`` pads rows with fewer hits)."""

    docs: np.ndarray  # int64 [nq, k]
    scores: np.ndarray  # float32 [nq, k]
    counts: np.ndarray  # int64 [nq]
    postings: np.ndarray  # int64 [nq]: postings scored per query


class Index:
    """A read-only index. Safe to share between threads."""

    def __init__(self, path: Path, manifest: Manifest, core: _core.Searcher, lexicon: Lexicon) -> None:
        self.path = path
        self.manifest = manifest
        self._core = core
        self.lexicon = lexicon

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Index:
        """Open and verify an index; raises :class:`CorruptIndexError` for anything incomplete or damaged."""
        path = Path(path)
        manifest = Manifest.read(path)
        manifest.check_files(path)
        try:
            core = _core.Searcher(str(path / POSTINGS))
        except _core.FormatError as e:
            raise CorruptIndexError(f"{path / POSTINGS}: {e}") from None
        lexicon = Lexicon(path / LEXICON)
        if (core.num_docs, core.vocab_size, core.num_postings) != (
            manifest.num_docs,
            manifest.vocab_size,
            manifest.num_postings,
        ) or len(lexicon) != manifest.num_docs:
            raise CorruptIndexError(f"{path}: postings, lexicon and manifest disagree on their counts")
        return cls(path, manifest, core, lexicon)

    @property
    def num_docs(self) -> int:
        return self._core.num_docs

    @property
    def vocab_size(self) -> int:
        return self._core.vocab_size

    @property
    def num_postings(self) -> int:
        return self._core.num_postings

    @property
    def size_bytes(self) -> int:
        return sum(int(f["bytes"]) for f in self.manifest.files.values())

    @property
    def postings_bytes(self) -> int:
        return self._core.file_size

    def term_df(self) -> np.ndarray:
        return self._core.term_df()

    def postings(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        """Decoded (doc numbers, uint8 impacts) of one term."""
        if not 0 <= term < self.vocab_size:
            raise ValueError(f"term id {term} out of range (vocab_size {self.vocab_size})")
        return self._core.postings(term)

    def check_vocab(self, vocab_hash: str) -> None:
        """Refuse an encoder whose vocabulary differs from the one this index was built with."""
        built = self.manifest.vocab_hash
        if built is None:
            raise VocabularyMismatchError(f"{self.path}: built without a vocabulary hash; rebuild it to check encoders")
        if built != vocab_hash:
            raise VocabularyMismatchError(
                f"{self.path} was built over vocabulary {built[:19]}..., the encoder's is {vocab_hash[:19]}...: "
                f"encode queries with the index's model ({self.manifest.model_id})"
            )

    def search_batch(
        self,
        queries: SparseBatch,
        k: int = 10,
        threads: int | None = None,
        allowed: np.ndarray | None = None,
        algorithm: str | None = None,
        block_docs: int = 64,
    ) -> BatchResults:
        """Exact top-``k`` of every query; every query must have a positive weight.

        ``allowed`` (bool, one per document in index order) restricts the hits to those documents: the filter is
        applied inside native scoring (a bitmap the top-k queue consults), so the top ``k`` under the filter are
        exact and never over-fetched.

        ``algorithm`` is how the postings are visited (None: ``default_algorithm()``); the hits are the same, scores
        and ties included (tested):
        ``"exhaustive"`` scores every posting of every query term; ``"block_max"`` (safe block-max pruning, BMP
        style) bounds each block of ``block_docs`` consecutive documents (a power of two) by the query terms'
        largest impacts in it, scores blocks best bound first and stops when no block left can reach the k-th
        hit. Its per-term block maxima are built on the first such search (one pass over the postings) and kept.
        ``"block_forward"`` visits the blocks in the same order but scores each from a forward index of the
        block's postings sorted by term (BMP's layout; built on first use, about four bytes a posting,
        ``block_docs`` at most 256) instead of decoding the posting lists.
        ``"auto"`` is block_forward over ``AUTO_BLOCK_DOCS``-document blocks that hands a query over to exhaustive
        search once the blocks still above its k-th score would cost more than the query's postings (decided per
        query, from its bounds; native ``hand_over_budget``); ``block_docs`` is then ignored. ``postings`` in the
        results counts the postings each query decoded (a query handed over: its blocks' entries, then every
        posting).
        """
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        threads = os.cpu_count() or 1 if threads is None else threads
        if not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        algorithm = default_algorithm() if algorithm is None else algorithm
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {ALGORITHMS}")
        if not isinstance(block_docs, (int, np.integer)) or block_docs < 1 or block_docs & (block_docs - 1):
            raise ValueError(f"block_docs must be a power of two, got {block_docs!r}")
        if block_docs > 1 << 20:
            raise ValueError(f"block_docs must be at most {1 << 20}, got {block_docs}")
        if algorithm == "block_forward" and block_docs > 256:
            raise ValueError(f"block_forward takes block_docs of at most 256, got {block_docs}")
        if algorithm == "auto":
            block_docs = AUTO_BLOCK_DOCS
        q = SparseBatch(*queries).validated(self.vocab_size, what="queries", allow_empty_rows=False)
        k_eff = int(min(k, max(self.num_docs, 1)))
        bitmap = None if allowed is None else allowed_bitmap(allowed, self.num_docs)
        shift = int(block_docs).bit_length() - 1
        docs, scores, counts, postings = self._core.search_batch(*q, k_eff, threads, bitmap, algorithm, shift)
        docs = docs.astype(np.int64)
        docs[docs == 0xFFFFFFFF] = -1
        return BatchResults(docs, scores, counts.astype(np.int64), postings.astype(np.int64))

    def pruning_bytes(self, algorithm: str = "exhaustive", block_docs: int = 64) -> int:
        """Memory held by the derived structures of ``algorithm`` at ``block_docs`` (built by the first search
        that uses them; 0 before that and for exhaustive search): the doc-block maxima, and block_forward's forward
        index."""
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {ALGORITHMS}")
        if algorithm == "auto":
            algorithm, block_docs = "block_forward", AUTO_BLOCK_DOCS
        if algorithm == "exhaustive":
            return 0
        shift = int(block_docs).bit_length() - 1
        return int(self._core.pruning_bytes(algorithm == "block_forward", shift))

    def search(self, indices: np.ndarray, values: np.ndarray, k: int = 10) -> list[Hit]:
        """Exact top-``k`` of one query given as uint32 term ids and float32 weights."""
        batch = SparseBatch(np.array([0, len(indices)], dtype=np.uint64), indices, values)
        res = self.search_batch(batch, k=k, threads=1)
        return self.hits(res, 0)

    def hits(self, results: BatchResults, row: int) -> list[Hit]:
        n = int(results.counts[row])
        return [Hit(self.lexicon[int(d)], float(s)) for d, s in zip(results.docs[row, :n], results.scores[row, :n])]


def allowed_bitmap(allowed: np.ndarray, num_docs: int) -> np.ndarray:
    """A bool mask over the documents -> the native bitmap: ceil(num_docs / 64) uint64 words, bit d of word d // 64."""
    if not isinstance(allowed, np.ndarray) or allowed.dtype != np.bool_ or allowed.shape != (num_docs,):
        raise TypeError(f"allowed must be a bool array with one entry per document ({num_docs})")
    words = -(-num_docs // 64)
    packed = np.packbits(allowed, bitorder="little")
    padded = np.zeros(words * 8, dtype=np.uint8)
    padded[: len(packed)] = packed
    return padded.view("<u8").astype(np.uint64, copy=False)
