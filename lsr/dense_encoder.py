"""DenseEncoder: sentence-transformers bi-encoders (all-MiniLM-L6-v2 is packaged as ``minilm-l6``).

Vectors are float32 and L2-normalised, so inner product is cosine similarity. A sparse encoder trained with a
dense head (``dense_pooling``, e.g. ``smollm2-splade``) is also a dense model under its own name: ``DenseHead``
serves the dense vector of the same forward pass.
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
    def from_pretrained(
        cls, name: str | Path, *, device: str = "cpu", max_length: int | None = None
    ) -> DenseEncoder | DenseHead:
        """A sentence-transformers model, or the dense head of a saved sparse encoder that has one."""
        from sentence_transformers import SentenceTransformer

        src = resolve(name)
        if has_dense_head(src.path):
            from .sparse_encoder import SparseEncoder

            return DenseHead(SparseEncoder.from_pretrained(name, device=device), str(name))
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


def has_dense_head(folder: Path) -> bool:
    """Whether ``folder`` is a saved sparse encoder (lsr_config.json) trained with a dense head."""
    from .config import CONFIG_NAME, SparseEncoderConfig

    return (folder / CONFIG_NAME).is_file() and bool(SparseEncoderConfig.load(folder).dense_pooling)


class DenseHead:
    """The dense vectors of a SparseEncoder with ``dense_pooling``: the same forward pass as its sparse vectors.

    ``sparse_encoder`` is public so that a caller holding both (lsr index) encodes each text once.
    """

    def __init__(self, sparse_encoder, name: str = "") -> None:  # noqa: ANN001 - an lsr.SparseEncoder
        if not sparse_encoder.dense_dim:
            raise ValueError(f"sparse encoder {name!r} has no dense head (dense_pooling is unset)")
        self.sparse_encoder = sparse_encoder
        self.name = name
        self.dim = int(sparse_encoder.dense_dim)

    @property
    def max_length(self) -> int:
        return int(self.sparse_encoder.config.max_length)

    def encode_queries(self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        return self.sparse_encoder.encode(texts, "query", batch_size=batch_size, show_progress=show_progress).dense

    def encode_documents(self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        return self.sparse_encoder.encode(texts, "document", batch_size=batch_size, show_progress=show_progress).dense
