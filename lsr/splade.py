"""SPLADE on an encoder with an MLM head (SPLADE v2+ pooling).

w_v = max over the text's tokens t of log(1 + ReLU(logit_{t,v})), with padding
and the special tokens ([CLS], [SEP]) excluded. Because log(1 + ReLU(.)) is
monotone, the max is taken over raw logits first and transformed once. The
batch x length x vocabulary logits are never held whole: the MLM decoder runs
over chunks of tokens while a running max is kept, and only the non-zeros
leave the device.

This is the first, minimal encoder of issue #3 (used by the index benchmarks);
the LLM backbones, PROSPER residual and the rest build on it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from indexer import SparseBatch

from .models import resolve_model_dir

logger = logging.getLogger(__name__)


class SpladeEncoder:
    def __init__(
        self,
        model_dir: str | Path,
        *,
        device: str = "cpu",
        max_length: int = 256,
        query_max_length: int = 64,
        token_chunk: int = 64,
        dtype: str = "float32",
    ) -> None:
        import torch
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        self.model_dir = Path(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.model = AutoModelForMaskedLM.from_pretrained(self.model_dir, dtype=getattr(torch, dtype))
        self.model.eval().to(device)
        self.device = device
        self.max_length = max_length
        self.query_max_length = query_max_length
        self.token_chunk = token_chunk
        self.vocab_size = int(self.model.config.vocab_size)
        self.truncated = 0
        self._special = torch.tensor(sorted(set(self.tokenizer.all_special_ids)), device=device)

    @classmethod
    def from_pretrained(cls, name: str, **kwargs) -> SpladeEncoder:
        return cls(resolve_model_dir(name), **kwargs)

    def encode_queries(self, texts: Sequence[str], batch_size: int = 64) -> SparseBatch:
        return self._encode(texts, batch_size, self.query_max_length)

    def encode_documents(self, texts: Sequence[str], batch_size: int = 32) -> SparseBatch:
        return self._encode(texts, batch_size, self.max_length)

    def _encode(self, texts: Sequence[str], batch_size: int, max_length: int) -> SparseBatch:
        import torch

        # Sort by length so batches carry little padding; restore the order at the end.
        lengths = [len(t) for t in texts]
        order = np.argsort(lengths, kind="stable")[::-1]
        rows: list[tuple[np.ndarray, np.ndarray]] = [None] * len(texts)  # type: ignore[list-item]
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                idx = order[start : start + batch_size]
                batch = [texts[i] for i in idx]
                enc = self.tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
                full = self.tokenizer(batch, truncation=False, return_length=True)["length"]
                self.truncated += int(sum(n > max_length for n in full))
                enc = {k: v.to(self.device) for k, v in enc.items()}
                weights = self._pool(enc["input_ids"], enc["attention_mask"], enc.get("token_type_ids"))
                nz = weights.nonzero()
                vals = weights[nz[:, 0], nz[:, 1]].float().cpu().numpy()
                nz = nz.cpu().numpy()
                splits = np.searchsorted(nz[:, 0], np.arange(len(idx) + 1))
                for j, i in enumerate(idx):
                    lo, hi = splits[j], splits[j + 1]
                    rows[i] = (nz[lo:hi, 1].astype(np.uint32), vals[lo:hi].astype(np.float32))
        indptr = np.zeros(len(texts) + 1, dtype=np.uint64)
        indptr[1:] = np.cumsum([len(r[0]) for r in rows])
        if not rows:
            return SparseBatch(indptr, np.zeros(0, np.uint32), np.zeros(0, np.float32))
        return SparseBatch(indptr, np.concatenate([r[0] for r in rows]), np.concatenate([r[1] for r in rows]))

    def _pool(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001, ANN202
        import torch

        base = self.model.base_model
        out = base(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        hidden = out.last_hidden_state
        head = self.model.get_output_embeddings()
        transform = self.model.cls.predictions.transform
        keep = attention_mask.bool() & ~torch.isin(input_ids, self._special)
        best = torch.full((hidden.shape[0], self.vocab_size), float("-inf"), device=hidden.device, dtype=hidden.dtype)
        for t0 in range(0, hidden.shape[1], self.token_chunk):
            h = transform(hidden[:, t0 : t0 + self.token_chunk])
            logits = head(h)  # B x chunk x V
            logits = logits.masked_fill(~keep[:, t0 : t0 + self.token_chunk, None], float("-inf"))
            best = torch.maximum(best, logits.amax(dim=1))
        return torch.log1p(torch.relu(best))
