"""Inference-free queries: a learned weight per vocabulary token instead of a query forward pass.

OpenSearch's doc-only sparse models (Geng et al. 2024, arXiv:2411.04403) and LightRetriever (Ma et al. 2025,
arXiv:2505.12260) keep the full model for documents only. A query costs one tokenizer call and a table lookup:

    sparse:  q_t = relu(w_t) for every distinct token t of the query (0 elsewhere)
    dense:   q = normalise(P * mean_t E_t)   (when the document encoder has a dense head)

w (one number per vocabulary entry) starts from the IDF of the training documents' terms; E are the backbone's
own input embeddings (frozen) and P an (H, H) map, both trained against the frozen document encoder with the
same ranking losses as the full model (lsr.train.lookup).

A folder holds ``query_lookup.json`` (the document encoder's alias or folder, the vocabulary hash), the
tokenizer and ``query_lookup.safetensors``; ``SparseEncoder.from_pretrained`` on such a folder returns an
``InferenceFreeEncoder``, which encodes documents with the document encoder and queries by lookup.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from indexer import SparseBatch

logger = logging.getLogger(__name__)

LOOKUP_CONFIG = "query_lookup.json"
LOOKUP_WEIGHTS = "query_lookup.safetensors"
FORMAT_VERSION = 1


@dataclass
class LookupConfig:
    # alias or folder of the SparseEncoder that encodes documents; a relative name that is a subfolder of the
    # lookup's own folder is read from there (a document encoder trained together with the lookup)
    document_encoder: str
    vocab_size: int
    vocab_hash: str
    dense: bool = False  # a dense query vector (the document encoder has a dense head)
    format_version: int = FORMAT_VERSION

    def save(self, folder: Path) -> None:
        (folder / LOOKUP_CONFIG).write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, folder: Path) -> LookupConfig:
        from .config import read_settings

        return cls(**read_settings(cls, folder / LOOKUP_CONFIG, FORMAT_VERSION, "query-lookup format"))


def is_lookup_folder(path: Path) -> bool:
    return (path / LOOKUP_CONFIG).is_file()


class InferenceFreeEncoder:
    """Documents through ``document_encoder`` (a SparseEncoder); queries by token lookup, no model call."""

    def __init__(
        self,
        document_encoder: Any,
        config: LookupConfig,
        weight: np.ndarray,
        dense_proj: np.ndarray | None = None,
    ) -> None:
        if config.vocab_hash != document_encoder.vocab_hash or weight.shape != (document_encoder.vocab_size,):
            raise ValueError("the query lookup was made for another vocabulary than its document encoder")
        if config.dense != (dense_proj is not None) or (config.dense and not document_encoder.dense_dim):
            raise ValueError("a dense query lookup needs a document encoder with a dense head, and the reverse")
        self.document_encoder = document_encoder
        self.config = config
        self.tokenizer = document_encoder.tokenizer
        self.weight = np.maximum(np.asarray(weight, dtype=np.float32), 0.0)  # relu once: lookups read this
        self.dense_proj = None if dense_proj is None else np.asarray(dense_proj, dtype=np.float32)
        self._embeddings: np.ndarray | None = None

    # ------------------------------------------------------------------ what retrieval uses
    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def vocab_hash(self) -> str:
        return self.config.vocab_hash

    @property
    def dense_dim(self) -> int | None:
        return self.document_encoder.dense_dim if self.config.dense else None

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's token ids (no special tokens), as the document encoder tokenizes."""
        return self.document_encoder.layout.tokenize(texts)

    def encode(self, texts: Sequence[str], side: str = "document", **kwargs: Any):  # noqa: ANN201 - an Encoding
        from .sparse_encoder import Encoding, _to_csr

        if side == "document":
            return self.document_encoder.encode(texts, "document", **kwargs)
        if side != "query":
            raise ValueError(f"side must be 'query' or 'document', not {side!r}")
        if isinstance(texts, (str, bytes)):
            raise TypeError("texts must be a sequence of str, not a single string")
        ids = self.token_ids(texts)
        rows = []
        for toks in ids:
            t = np.unique(np.asarray(toks, dtype=np.int64)).astype(np.uint32)
            w = self.weight[t]
            keep = w > 0
            rows.append((t[keep], w[keep]))
        sparse = _to_csr(rows)
        dense = self._dense(ids) if self.config.dense else None
        return Encoding(sparse, dense)

    def encode_queries(self, texts: Sequence[str], **kwargs: Any) -> SparseBatch:
        return self.encode(texts, "query").sparse

    def encode_documents(self, texts: Sequence[str], **kwargs: Any) -> SparseBatch:
        return self.document_encoder.encode(texts, "document", **kwargs).sparse

    def _dense(self, ids: list[list[int]]) -> np.ndarray:
        if self._embeddings is None:
            emb = self.document_encoder.backbone.lm.get_input_embeddings().weight
            self._embeddings = emb.detach().float().cpu().numpy()
        out = np.zeros((len(ids), self.dense_proj.shape[0]), dtype=np.float32)
        for i, toks in enumerate(ids):
            if toks:
                v = self.dense_proj @ self._embeddings[toks].mean(axis=0)
                n = float(np.linalg.norm(v))
                out[i] = v / n if n > 0 else 0.0
        return out

    # ------------------------------------------------------------------ files
    def save(self, folder: str | Path) -> Path:
        from indexer.atomic import staged

        final = Path(folder)
        with staged(final, overwrite=True) as work:
            self.write(work)
        return final

    def write(self, work: Path) -> None:
        """The lookup's files into an existing folder (``save`` stages one; a joint training run writes its
        document encoder beside them, in the subfolder ``config.document_encoder`` names)."""
        from safetensors.numpy import save_file

        self.config.save(work)
        self.tokenizer.save_pretrained(work)
        tensors = {"weight": self.weight}
        if self.dense_proj is not None:
            tensors["dense_proj"] = self.dense_proj
        save_file(tensors, str(work / LOOKUP_WEIGHTS))

    @classmethod
    def load(cls, folder: str | Path, *, device: str = "cpu", dtype: str = "float32") -> InferenceFreeEncoder:
        from safetensors.numpy import load_file

        from .sparse_encoder import SparseEncoder

        folder = Path(folder)
        config = LookupConfig.load(folder)
        inside = folder / config.document_encoder  # a document encoder saved with the lookup (joint training)
        source = inside if not Path(config.document_encoder).is_absolute() and inside.is_dir() else None
        doc = SparseEncoder.from_pretrained(source or config.document_encoder, device=device, dtype=dtype)
        if doc.vocab_hash != config.vocab_hash:
            raise ValueError(
                f"{folder}: made for document encoder {config.document_encoder!r} with another vocabulary "
                f"({config.vocab_hash[:20]}..., it now has {doc.vocab_hash[:20]}...)"
            )
        tensors = load_file(str(folder / LOOKUP_WEIGHTS))
        return cls(doc, config, tensors["weight"], tensors.get("dense_proj"))
