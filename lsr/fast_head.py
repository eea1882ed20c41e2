"""CPU fast path for max pooling: the native int8-screened head (lsr._head), exact in float32.

``FastHead.max_weights`` computes saturate(pooling.max_logits(...)) (the slow, obvious twin forms
the logits chunk by chunk), without the tokens x vocabulary logits: an int8 VNNI screen with a
proven error bound, and float32 dot products only where a logit can beat the running max.

The screen is cheapest on few dimensions: once a call brings enough tokens, the head is rebuilt on
their mean and the leading principal directions that hold SCREEN_ENERGY of the centred tokens'
energy (96 of 128 dimensions for SPLADE-tiny on scifact). The output never depends on that choice,
only the speed does.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
import torch

from . import pooling

logger = logging.getLogger(__name__)

SCREEN_ENERGY = 0.985  # share of the centred tokens' energy the screen's basis keeps
MAX_SCREEN_SHARE = 0.8  # a basis keeping more of the dimensions than this is not worth projecting on
CALIBRATION_TOKENS = 2048  # tokens a call needs before the basis is fitted to them

try:
    from . import _head
except ImportError:  # pragma: no cover - the native module is built by pip install
    _head = None


def available() -> bool:
    return _head is not None and bool(_head.simd_available())


def full_screen(dim: int) -> tuple[np.ndarray, np.ndarray]:
    """No centre and the identity basis: the screen on every dimension (no projection)."""
    return np.zeros(dim, np.float32), np.eye(dim)


def screen_basis(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre (float32) and orthonormal basis rows (float64) for the screen, fitted to token vectors x."""
    x64 = x.astype(np.float64)
    center = x64.mean(axis=0).astype(np.float32)
    centred = x64 - center
    eigval, eigvec = np.linalg.eigh(centred.T @ centred)
    order = np.argsort(eigval)[::-1]
    energy = np.cumsum(np.clip(eigval[order], 0, None))
    keep = int(np.searchsorted(energy, SCREEN_ENERGY * energy[-1])) + 1 if energy[-1] > 0 else 0
    keep = -(-keep // 4) * 4  # VNNI multiplies 4 bytes at a time
    if keep > MAX_SCREEN_SHARE * x.shape[1]:  # too little to gain for the projection's cost: no basis
        return full_screen(x.shape[1])
    return center, np.ascontiguousarray(eigvec[:, order[:keep]].T)


class FastHead:
    """Quantised copy of a vocabulary projection; rebuilt when the weights change."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._head = None
        self._fitted = False
        self._lock = threading.Lock()  # encode's CPU workers share one head
        self.calibration_tokens = CALIBRATION_TOKENS  # a benchmark raises it to keep the full-dimension screen

    def _get(self, weight: torch.Tensor, bias: torch.Tensor | None, x: np.ndarray):  # noqa: ANN202
        with self._lock:
            return self._get_locked(weight, bias, x)

    def _get_locked(self, weight: torch.Tensor, bias: torch.Tensor | None, x: np.ndarray):  # noqa: ANN202
        key = (weight.data_ptr(), weight._version, None if bias is None else (bias.data_ptr(), bias._version))
        if key != self._key:
            self._key, self._head, self._fitted = key, None, False
        fit = not self._fitted and len(x) >= self.calibration_tokens
        if self._head is not None and not fit:
            return self._head
        center, basis = screen_basis(x[: 8 * self.calibration_tokens]) if fit else full_screen(weight.shape[1])
        self._fitted = fit
        if self._head is not None and len(basis) == self._head.screen_dim == weight.shape[1]:
            return self._head  # the fit kept every dimension: the full-dimension head already stands
        w = np.ascontiguousarray(weight.detach().float().numpy())
        b = np.zeros(w.shape[0], np.float32) if bias is None else np.ascontiguousarray(bias.detach().float().numpy())
        logger.debug("screen basis: %d of %d dimensions", len(basis), w.shape[1])
        self._head = _head.Head(w, b, center, basis)
        return self._head

    def max_weights(
        self, x: torch.Tensor, counts: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, threads: int
    ) -> torch.Tensor:
        """(B, V) SPLADE weights log(1 + ReLU(max over each text's rows of x @ W.T + b)), i.e.
        pooling.saturate(pooling.max_logits(...)), saturating only the non-zeros the native head returns.

        x: (N, H') float32 vectors of the kept tokens, text after text; counts: (B,) tokens per text.
        """
        xs = np.ascontiguousarray(x.detach().float().numpy())
        head = self._get(weight, bias, xs)
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum(counts.cpu().numpy())
        indptr, indices, values, _ = _head.max_logits(head, xs, offsets, threads, True)
        rows = np.repeat(np.arange(len(counts)), np.diff(indptr).astype(np.int64))
        out = torch.zeros((len(counts), head.vocab))
        out[torch.from_numpy(rows), torch.from_numpy(indices.astype(np.int64))] = pooling.saturate(
            torch.from_numpy(values)
        )
        return out
