"""DenseEncoder: sentence-transformers bi-encoders (all-MiniLM-L6-v2 is packaged as ``minilm-l6``).

Vectors are float32 and L2-normalised, so inner product is cosine similarity. For a dense vector
from an LLM backbone's own forward pass, use SparseEncoder with ``dense_pooling``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import heap
from .models import resolve

logger = logging.getLogger(__name__)


class DenseEncoder:
    def __init__(self, model, name: str = "") -> None:  # noqa: ANN001 - a SentenceTransformer
        self.model = model
        self.name = name
        dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dim = int(dim())

    @classmethod
    def from_pretrained(cls, name: str | Path, *, device: str = "cpu", max_length: int | None = None) -> DenseEncoder:
        from sentence_transformers import SentenceTransformer

        src = resolve(name)
        model = SentenceTransformer(str(src.path), device=device, local_files_only=True)
        if max_length is not None:
            model.max_seq_length = max_length
        return cls(model, str(name))

    @property
    def max_length(self) -> int:
        return int(self.model.max_seq_length)

    def encode_queries(self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        return self._encode(texts, batch_size, show_progress)

    def encode_documents(self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        return self._encode(texts, batch_size, show_progress)

    def _encode(self, texts: Sequence[str], batch_size: int, show_progress: bool) -> np.ndarray:
        if isinstance(texts, (str, bytes)):
            raise TypeError("texts must be a sequence of str, not a single string")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"text {i} is {type(t).__name__}, expected str")
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.model.device.type == "cpu":
            heap.retain_freed_memory()
        out = self.model.encode(
            list(texts),
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=show_progress,
        )
        return np.ascontiguousarray(out, dtype=np.float32)
