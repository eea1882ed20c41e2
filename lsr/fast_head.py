"""CPU fast path for max pooling: the native int8-screened head (lsr._head), exact in float32.

``max_logits`` here computes what pooling.max_logits computes (the slow, obvious twin that forms
the logits chunk by chunk), without the tokens x vocabulary logits: an int8 VNNI screen with a
proven error bound, and float32 dot products only where a logit can beat the running max.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

logger = logging.getLogger(__name__)

try:
    from . import _head
except ImportError:  # pragma: no cover - the native module is built by pip install
    _head = None


def available() -> bool:
    return _head is not None and bool(_head.simd_available())


class FastHead:
    """Quantised copy of a vocabulary projection; rebuilt when the weights change."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._head = None

    def _get(self, weight: torch.Tensor, bias: torch.Tensor | None):  # noqa: ANN202
        key = (weight.data_ptr(), weight._version, None if bias is None else (bias.data_ptr(), bias._version))
        if key != self._key:
            w = np.ascontiguousarray(weight.detach().float().numpy())
            b = (
                np.zeros(w.shape[0], np.float32)
                if bias is None
                else np.ascontiguousarray(bias.detach().float().numpy())
            )
            self._head = _head.Head(w, b)
            self._key = key
        return self._head

    def max_logits(
        self, x: torch.Tensor, counts: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, threads: int
    ) -> torch.Tensor:
        """(B, V) max over each text's rows of x @ W.T + b where positive, -inf elsewhere.

        x: (N, H') float32 vectors of the kept tokens, text after text; counts: (B,) tokens per text.
        """
        head = self._get(weight, bias)
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum(counts.cpu().numpy())
        xs = np.ascontiguousarray(x.detach().float().numpy())
        indptr, indices, values, _ = _head.max_logits(head, xs, offsets, threads, True)
        out = torch.full((len(counts), head.vocab), float("-inf"))
        rows = np.repeat(np.arange(len(counts)), np.diff(indptr).astype(np.int64))
        out[torch.from_numpy(rows), torch.from_numpy(indices.astype(np.int64))] = torch.from_numpy(values)
        return out
