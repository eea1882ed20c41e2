"""Pooling and sparsification: pure tensor functions, one formula each, tested by hand.

Shapes: B texts, T positions, H hidden size, V vocabulary size. ``keep`` is a bool (B, T)
mask of the positions a text is pooled over (padding, special tokens and, in echo mode,
the first copy are False).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Head = Callable[[torch.Tensor], torch.Tensor]  # (..., H) hidden -> (..., V) logits


def max_logits(hidden: torch.Tensor, keep: torch.Tensor, head: Head, vocab_size: int, token_chunk: int) -> torch.Tensor:
    """max over kept positions of the head's logits, (B, V); -inf where a row keeps nothing.

    The (B, T, V) logits are never held whole: the head runs over ``token_chunk`` positions
    at a time and a running max is kept (SPLADE's max pooling commutes with the chunking).
    """
    best: torch.Tensor | None = None
    for t0 in range(0, hidden.shape[1], token_chunk):
        k = keep[:, t0 : t0 + token_chunk]
        if not bool(k.any()):
            continue
        logits = head(hidden[:, t0 : t0 + token_chunk])
        logits = logits.masked_fill_(~k[..., None], float("-inf")).amax(dim=1)
        best = logits if best is None else torch.maximum(best, logits)
    if best is None:
        return torch.full((hidden.shape[0], vocab_size), float("-inf"), device=hidden.device, dtype=hidden.dtype)
    return best


def max_logits_packed(hidden: torch.Tensor, keep: torch.Tensor, head: Head) -> torch.Tensor:
    """The same (B, V) maxima as ``max_logits``, for training: the head runs only over the kept positions (no
    padding, no special tokens), packed row after row, and a segment max per row gives the result (-inf for a
    row that keeps nothing). Every kept position's logits are held at once, as backpropagation needs them anyway.
    """
    logits = head(hidden[keep])  # (N, V), rows of text 0 first, then text 1, ...
    return torch.segment_reduce(logits, "max", lengths=keep.sum(dim=1), axis=0, unsafe=True)


def saturate(logits: torch.Tensor) -> torch.Tensor:
    """SPLADE's log(1 + ReLU(x)); -inf maps to 0."""
    return torch.log1p(torch.relu(logits))


def last_index(keep: torch.Tensor) -> torch.Tensor:
    """Index of the last True position per row (0 for rows with none), (B,)."""
    T = keep.shape[1]
    pos = torch.arange(T, device=keep.device).expand_as(keep)
    return torch.where(keep, pos, torch.zeros_like(pos)).amax(dim=1)


def gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x[b, index[b]] for (B, T, ...) x, giving (B, ...)."""
    return x[torch.arange(x.shape[0], device=x.device), index]


def mean_pool(hidden: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    m = keep.to(hidden.dtype)[..., None]
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


def input_indicator(input_ids: torch.Tensor, keep: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """I in {0, 1}^(B, V): 1 for the vocabulary entries of the text's own kept tokens."""
    ind = torch.zeros(input_ids.shape[0], vocab_size, device=input_ids.device, dtype=torch.bool)
    rows = torch.arange(input_ids.shape[0], device=input_ids.device)[:, None].expand_as(input_ids)
    ind[rows[keep], input_ids[keep]] = True
    return ind


def literal_residual(w: torch.Tensor, w_prime: torch.Tensor, indicator: torch.Tensor) -> torch.Tensor:
    """PROSPER's literal residual (Song et al. 2025, arXiv:2510.18527): W = w + I * (max(w') - w').

    w' = FC(h_last) scores every vocabulary entry; the text's own tokens (I) are lifted by how far
    they fall below the best-scored entry, so literal terms (brands, model numbers) the expansion
    under-weights are compensated. max(w') is taken per row over the whole vocabulary.
    """
    comp = w_prime.amax(dim=-1, keepdim=True) - w_prime
    return w + indicator.to(w.dtype) * comp


def top_k(w: torch.Tensor, k: int) -> torch.Tensor:
    """Keep each row's k largest entries (ties broken by torch.topk), zero the rest.

    This is PROSPER's lexical focusing window when applied with k_q / k_d, and top-k pruning
    at encode time; rows with at most k non-zeros are unchanged.
    """
    if k >= w.shape[-1]:
        return w
    vals, idx = torch.topk(w, k, dim=-1)
    return torch.zeros_like(w).scatter_(-1, idx, vals)


def threshold(w: torch.Tensor, t: float) -> torch.Tensor:
    """Zero every weight <= t."""
    return w.masked_fill(w <= t, 0.0)


def l2_normalize(w: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(w, p=2.0, dim=-1)
