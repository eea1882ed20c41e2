"""Sparsity regularisers on (n, V) non-negative weight matrices, and their schedule."""

from __future__ import annotations

import torch


def flops(w: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """FLOPS regulariser (Paria et al. 2020, arXiv:2004.05665; SPLADE, Formal et al. 2021): sum over the vocabulary
    of the squared mean absolute weight, a smooth proxy for the number of floating-point operations of retrieval.
    ``mask`` (n,) bool keeps only some rows (the document threshold); the mean is over the rows kept. It is a
    function of the rows it is given: with gradient accumulation each micro-batch is regularised on its own.
    """
    if mask is not None:
        w = w[mask]
    if w.shape[0] == 0:
        return w.sum() * 0.0
    return (w.abs().mean(dim=0) ** 2).sum()


def l1(w: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """L1 regulariser: mean over rows of the sum of absolute weights (SPLADE v1's alternative to FLOPS)."""
    if mask is not None:
        w = w[mask]
    if w.shape[0] == 0:
        return w.sum() * 0.0
    return w.abs().sum(dim=-1).mean()


def above_threshold(w: torch.Tensor, target_nnz: int | None) -> torch.Tensor | None:
    """Rows still worth regularising: those with more than ``target_nnz`` non-zeros (None: all rows).
    A document already at or below the target stops being pushed sparser."""
    if target_nnz is None:
        return None
    return (w > 0).sum(dim=-1) > target_nnz


def quadratic_warmup(weight: float, step: int, warmup_steps: int) -> float:
    """The regulariser's weight at ``step``: ``weight * min(1, (step / warmup_steps)^2)`` (SPLADE's quadratic
    warm-up, Formal et al. 2021), so early training learns to rank before it learns to be sparse."""
    if warmup_steps <= 0:
        return weight
    return weight * min(1.0, (step / warmup_steps) ** 2)
