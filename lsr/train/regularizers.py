"""Sparsity regularisers on (n, V) non-negative weight matrices, and their schedule."""

from __future__ import annotations

import torch


def flops(w: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """FLOPS regulariser (Paria et al. 2020, arXiv:2004.05665; SPLADE, Formal et al. 2021): sum over the vocabulary
    of the squared mean absolute weight, a smooth proxy for the number of floating-point operations of retrieval.
    ``mask`` (n,) bool keeps only some rows (the document threshold); the mean is over the rows kept. It is a
    function of the rows it is given: with gradient accumulation each micro-batch is regularised on its own.

    Under data parallelism (``torch.distributed`` initialised with more than one process) the mean is over the
    global batch: the column sums and row counts of every process are summed (a differentiable all-reduce), so the
    value does not depend on the number of processes. A per-process mean gives another value and gradient (each
    GPU's small batch squared on its own), which made multi-GPU models 2-4x denser in texttron/tevatron PR #36.
    Each process's gradient is the global one times the world size, which DDP's gradient averaging divides out.
    """
    if mask is not None:
        w = w[mask]
    column_sum = w.abs().sum(dim=0)
    rows = torch.tensor([float(w.shape[0])], device=w.device)
    if _world_size() > 1:
        import torch.distributed as dist
        from torch.distributed.nn.functional import all_reduce

        column_sum = all_reduce(column_sum)
        dist.all_reduce(rows)
    if float(rows) == 0.0:
        return w.sum() * 0.0
    return ((column_sum / rows) ** 2).sum()


def _world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


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
