"""The encoder cache: each model loaded once, on first use, and shared by every index that names it; single
queries coalesced through one micro-batcher per model (``retrieval.batcher``)."""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from .batcher import Batcher

logger = logging.getLogger(__name__)

QueryFn = Callable[[list[str]], list]  # query texts -> one encoded query each


class EncoderUnavailableError(RuntimeError):
    """Text must be encoded, and this install has no encoders (the torch extra): it serves pre-encoded vectors."""


class Encoders:
    """Each model loaded once, on first use, and shared by every index that names it;
    single queries go through one micro-batcher per model (:mod:`retrieval.batcher`).

    Without torch installed (no ``torch`` extra) every load raises :class:`EncoderUnavailableError`: such a
    service searches and stores vectors its clients encoded."""

    def __init__(self, device: str = "cpu", remote: Callable[[str, str], QueryFn] | None = None) -> None:
        """``remote`` (kind, model) -> a function of a list of query texts: where queries are encoded instead of
        here (``retrieval.encoder_serving.remote_queries``: replicas on Ray Serve that batch the requests); models
        are still loaded here for what else needs them (tokens, explain, documents)."""
        self.device = device
        self.remote = remote
        self._remote: dict[tuple[str, str], QueryFn] = {}
        self._models: dict[tuple[str, str], Any] = {}
        self._batchers: dict[tuple[str, str], Batcher] = {}
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        """Whether models can be loaded here: torch is installed."""
        return importlib.util.find_spec("torch") is not None

    def sparse(self, name: str) -> Any:
        return self._load("sparse", name)

    def dense(self, name: str) -> Any:
        return self._load("dense", name)

    def sparse_query(self, name: str, text: str) -> tuple[np.ndarray, np.ndarray]:
        """One query's sparse vector (term ids, weights), batched with concurrent calls."""
        return self._batcher("sparse", name)(text)

    def dense_query(self, name: str, text: str) -> np.ndarray:
        return self._batcher("dense", name)(text)

    def queries(self, kind: str, name: str, texts: list[str]) -> list:
        """Many queries in one call: sparse rows (term ids, weights) or dense vectors, one per text."""
        return self._query_fn(kind, name)(texts)

    def _query_fn(self, kind: str, name: str) -> QueryFn:
        if self.remote is None:
            return partial(_sparse_queries if kind == "sparse" else _dense_queries, self._load(kind, name))
        key = (kind, name)
        if key not in self._remote:
            with self._lock:
                if key not in self._remote:
                    self._remote[key] = self.remote(kind, name)
        return self._remote[key]

    def _batcher(self, kind: str, name: str) -> Batcher:
        key = (kind, name)
        if key not in self._batchers:  # a dict lookup per query once it exists
            fn = self._query_fn(kind, name)
            with self._lock:
                self._batchers.setdefault(key, Batcher(fn))
        return self._batchers[key]

    def _load(self, kind: str, name: str) -> Any:
        if (kind, name) not in self._models and not self.available:
            raise EncoderUnavailableError(
                f"encoding text with {name!r} needs the torch extra (pip install 'lsr-search[torch]'); "
                "this install serves pre-encoded vectors only: send indices and values (and dense vectors)"
            )
        with self._lock:
            if (kind, name) not in self._models:
                from lsr import DenseEncoder, SparseEncoder
                from lsr.dense_encoder import DenseHead, has_dense_head
                from lsr.models import resolve

                t0 = time.perf_counter()
                if kind == "dense" and has_dense_head(resolve(name).path):  # one model for both, loaded once
                    if ("sparse", name) not in self._models:
                        self._models["sparse", name] = SparseEncoder.from_pretrained(name, device=self.device)
                    self._models[kind, name] = DenseHead(self._models["sparse", name], name)
                else:
                    cls = SparseEncoder if kind == "sparse" else DenseEncoder
                    self._models[kind, name] = cls.from_pretrained(name, device=self.device)
                logger.info("loaded %s encoder %s in %.1f s", kind, name, time.perf_counter() - t0)
            return self._models[kind, name]


def _sparse_queries(model: Any, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    batch = model.encode_queries(texts)
    return [batch.row(i) for i in range(len(texts))]


def _dense_queries(model: Any, texts: list[str]) -> list[np.ndarray]:
    return list(np.asarray(model.encode_queries(texts), dtype=np.float32))
