"""Text encoders: SPLADE-style sparse encoders (MLM or decoder-only LLM backbones) and dense encoders.

Heavy imports (torch, transformers) happen on first use of an encoder class.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DenseEncoder", "Encoding", "SparseEncoder", "SparseEncoderConfig"]


def __getattr__(name: str) -> Any:
    if name in ("SparseEncoder", "Encoding"):
        from . import sparse_encoder

        return getattr(sparse_encoder, name)
    if name == "SparseEncoderConfig":
        from .config import SparseEncoderConfig

        return SparseEncoderConfig
    if name == "DenseEncoder":
        from .dense_encoder import DenseEncoder

        return DenseEncoder
    raise AttributeError(f"module 'lsr' has no attribute {name!r}")
