"""The settings that define what a sparse encoder computes; saved beside its weights as lsr_config.json."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

CONFIG_NAME = "lsr_config.json"
FORMAT_VERSION = 1


@dataclass
class SparseEncoderConfig:
    kind: str  # "mlm" (SPLADE on an encoder) or "causal" (decoder-only LLM)
    vocab_size: int
    vocab_hash: str
    base_model: str = ""  # where the backbone came from (alias, folder or hub id), informational
    pooling: str = "max"  # "max": SPLADE max over tokens; "last": the last token's logits (PromptReps)
    echo: bool = False  # input repeated, pooled over the second copy only (causal backbones)
    bidirectional: bool = False  # causal backbones: attend both ways (padding-only mask)
    pool_special_tokens: bool = False  # pool over [CLS]/[SEP] too, as SPLADE's code and sentence-transformers do
    max_length: int = 256  # document tokens, special tokens included (both copies in echo mode)
    query_max_length: int = 64
    # causal backbones: a trained (V,) bias on the LM-head logits; started negative it makes a fresh decoder's
    # max-pooled logits sparse (nearly all are positive on SmolLM2) so training starts from its confident tokens
    head_bias: bool = False
    literal_residual: bool = False  # PROSPER: W = w + I * (max(w') - w'), w' = FC(h_last)
    focus_window: bool = False  # PROSPER lexical focusing window: top-k per text
    focus_k_query: int = 256
    focus_k_document: int = 512
    query_l2_norm: bool = False
    dense_pooling: str | None = None  # dense head from the same forward pass: "last", "mean" or None
    # which hidden states the dense head pools: 0 the last ones (after a decoder's final norm), k >= 1 the output of
    # block k. A decoder's last blocks serve its LM head: on smollm2-splade the mean of block 28's output (of 30)
    # ranks far better than the last hidden states (benchmarks/dense_head.py, `probe`: MRR 0.50 against 0.16)
    dense_layer: int = 0
    dense_projection: bool = False  # a trained (H, H) linear map on the pooled vector, the identity at the start
    lora: dict | None = None  # {"r", "alpha", "dropout", "target_modules"} once adapters are added
    # set when the saved weights hold only the trained parts (LoRA, residual): the base weights are read from
    # base_model at load time and must have this sha256
    base_sha256: str = ""
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.kind not in ("mlm", "causal"):
            raise ValueError(f"kind must be 'mlm' or 'causal', not {self.kind!r}")
        if self.pooling not in ("max", "last"):
            raise ValueError(f"pooling must be 'max' or 'last', not {self.pooling!r}")
        if self.dense_pooling not in (None, "last", "mean"):
            raise ValueError(f"dense_pooling must be 'last', 'mean' or None, not {self.dense_pooling!r}")
        if self.dense_layer < 0:
            raise ValueError(f"dense_layer must be >= 0 (0: the last hidden states), not {self.dense_layer}")
        if (self.dense_layer or self.dense_projection) and not self.dense_pooling:
            raise ValueError("dense_layer and dense_projection shape a dense head: set dense_pooling too")
        if self.kind == "mlm" and (self.echo or self.bidirectional or self.pooling == "last"):
            raise ValueError("echo, bidirectional and last-token pooling apply to causal (decoder-only) backbones")
        if self.kind == "mlm" and self.head_bias:
            raise ValueError("head_bias is an option of causal backbones (an MLM head has its own bias)")
        if self.echo and self.pool_special_tokens:
            raise ValueError("echo mode pools over the second copy only, never over special tokens")
        minimum = 4 if self.echo else 2
        if self.max_length < minimum or self.query_max_length < minimum:
            raise ValueError(f"max_length and query_max_length must be at least {minimum}")
        if self.focus_k_query < 1 or self.focus_k_document < 1:
            raise ValueError("focusing window sizes must be positive")

    def save(self, folder: Path) -> None:
        (folder / CONFIG_NAME).write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, folder: Path) -> SparseEncoderConfig:
        return cls(**read_settings(cls, folder / CONFIG_NAME, FORMAT_VERSION, "encoder format version"))


def read_settings(cls: type, path: Path, version: int, what: str) -> dict:
    """A saved settings file's fields for dataclass ``cls``: refuses another format version and unknown keys."""
    raw = json.loads(path.read_text())
    if raw.get("format_version") != version:
        raise ValueError(f"{path.parent}: {what} {raw.get('format_version')}, expected {version}")
    unknown = set(raw) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"{path}: unknown settings {sorted(unknown)}")
    return raw
