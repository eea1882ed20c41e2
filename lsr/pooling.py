"""Pooling and sparsification: pure tensor functions, one formula each, tested by hand.

Shapes: B texts, T positions, H hidden size, V vocabulary size. ``keep`` is a bool (B, T)
mask of the positions a text is pooled over (padding, special tokens and, in echo mode,
the first copy are False).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch

from .transfer import to_device

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


def _project_setup(x, lengths, weight, bias):  # noqa: ANN001, ANN202
    """What both max projections start from: each text's row count and first row (host-side: no device sync
    later), the head in x's dtype, and the (B, V) maxima (-inf) and argmax rows (-1) to fill."""
    lens = lengths.tolist()
    starts = [0, *itertools.accumulate(lens)][:-1]
    w = weight.to(x.dtype)
    b = None if bias is None else bias.to(x.dtype)
    out = torch.full((len(lens), weight.shape[0]), float("-inf"), device=x.device, dtype=x.dtype)
    arg = torch.full((len(lens), weight.shape[0]), -1, device=x.device, dtype=torch.long)
    return lens, starts, w, b, out, arg


def _keep_for_backward(ctx, x, weight, arg, bias) -> None:  # noqa: ANN001
    ctx.save_for_backward(x, weight, arg)
    ctx.has_bias = bias is not None
    ctx.bias_dtype = None if bias is None else bias.dtype


def _bias_grad(ctx, grad, found):  # noqa: ANN001, ANN202
    """The bias gets each found maximum's gradient (texts without rows have none)."""
    return (grad * found).sum(dim=0).to(ctx.bias_dtype) if ctx.has_bias and ctx.needs_input_grad[3] else None


class _MaxProject(torch.autograd.Function):
    """max over each text's rows of ``x W^T + b``; keeps the (B, V) argmax rows, not the (N, V) logits."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")
    def forward(ctx, x, lengths, weight, bias):  # noqa: ANN001, ANN205
        lens, starts, w, b, out, arg = _project_setup(x, lengths, weight, bias)
        for i, (s0, n) in enumerate(zip(starts, lens)):
            if n:
                logits = torch.nn.functional.linear(x[s0 : s0 + n], w, b)
                out[i], arg[i] = logits.max(dim=0)
                arg[i] += s0
        _keep_for_backward(ctx, x, weight, arg, bias)
        ctx.bounds = [(s0, s0 + n) for s0, n in zip(starts, lens)]  # host-side: backward needs no device sync
        return out

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        x, weight, arg = ctx.saved_tensors
        grad_x = grad_w = None
        w = weight.to(x.dtype)
        grad = grad.to(x.dtype)
        found = arg >= 0  # texts without rows have no maximum and get no gradient
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[2]:
            grad_x = torch.zeros_like(x) if ctx.needs_input_grad[0] else None
            grad_w = torch.zeros_like(w) if ctx.needs_input_grad[2] else None
            for i, (s0, s1) in enumerate(ctx.bounds):
                if s1 == s0:
                    continue
                # M[t, v] = grad[i, v] where row t holds text i's maximum of entry v (no host sync per text: on a
                # GPU three per text once made this loop wait on the device 300 times a step)
                rows = torch.arange(s0, s1, device=x.device)[:, None]
                m = torch.where(
                    arg[i][None, :] == rows, grad[i][None, :], torch.zeros((), dtype=grad.dtype, device=grad.device)
                )
                if grad_x is not None:
                    grad_x[s0:s1] += m @ w
                if grad_w is not None:
                    grad_w += m.T @ x[s0:s1]
            if grad_w is not None:
                grad_w = grad_w.to(weight.dtype)
        return grad_x, None, grad_w, _bias_grad(ctx, grad, found)


class _MaxProjectBatched(torch.autograd.Function):
    """``_MaxProject`` in a few large kernels instead of a few small ones per text (for the GPU, where launching
    them cost more than the arithmetic): texts are padded to (b, T, H) chunks, each chunk projected in one GEMM
    and reduced in one max; backward is one sparse (rows x V) matrix holding each maximum's gradient at its argmax
    row, multiplied by W (for x) and, transposed, by x (for W)."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")
    def forward(ctx, x, lengths, weight, bias, budget):  # noqa: ANN001, ANN205
        lens, starts, w, b, out, arg = _project_setup(x, lengths, weight, bias)
        V = weight.shape[0]
        i = 0
        while i < len(lens):  # chunks of texts whose padded logits fit the budget
            T, j = max(lens[i], 1), i + 1
            while j < len(lens) and (j + 1 - i) * max(T, lens[j]) * V <= budget:
                T, j = max(T, lens[j]), j + 1
            # the padding mask built on the host (the lengths are known there), its slots too, and both copied
            # without waiting for the device
            host = torch.arange(T)[None, :] < torch.tensor(lens[i:j])[:, None]  # (b, T)
            mask = to_device(host, x.device)
            x_pad = x.new_zeros((j - i) * T, x.shape[1])
            x_pad.index_copy_(0, to_device(host.flatten().nonzero().squeeze(1), x.device),
                              x[starts[i] : starts[i] + sum(lens[i:j])])  # fmt: skip
            x_pad = x_pad.view(j - i, T, x.shape[1])
            logits = torch.nn.functional.linear(x_pad, w, b).masked_fill_(~mask[..., None], float("-inf"))
            vals, idx = logits.max(dim=1)
            first = to_device(torch.tensor(starts[i:j]), x.device)[:, None]
            out[i:j] = vals
            arg[i:j] = torch.where(mask[:, :1], idx + first, torch.full_like(idx, -1))  # a text without rows: -1
            i = j
        _keep_for_backward(ctx, x, weight, arg, bias)
        return out

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        x, weight, arg = ctx.saved_tensors
        grad_x = grad_w = None
        found = arg >= 0
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[2]:
            math = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
            text, v = found.nonzero(as_tuple=True)
            S = torch.sparse_coo_tensor(
                torch.stack([arg[text, v], v]),
                grad[text, v].to(math),
                (x.shape[0], weight.shape[0]),
                check_invariants=False,
            ).coalesce()  # S[t, v]: the gradient of each maximum, at the row that holds it
            with torch.autocast(device_type=x.device.type, enabled=False):  # sparse products in ``math``
                if ctx.needs_input_grad[0]:
                    grad_x = torch.sparse.mm(S, weight.to(math)).to(x.dtype)
                if ctx.needs_input_grad[2]:
                    grad_w = torch.sparse.mm(S.t(), x.to(math)).to(weight.dtype)
        return grad_x, None, grad_w, _bias_grad(ctx, grad, found), None


LOGITS_BUDGET = 1 << 28  # padded logits one chunk of _MaxProjectBatched may hold (elements)


def max_project_packed(
    x: torch.Tensor,
    lengths: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    batched: bool | None = None,
    budget: int = LOGITS_BUDGET,
) -> torch.Tensor:
    """The (B, V) maxima of ``max_logits_packed`` for a linear head, holding far less memory: ``x`` (N, H) are the
    kept positions' head inputs packed text after text (``lengths`` (B,) rows each), ``weight`` (V, H) and ``bias``
    the vocabulary projection. Forward keeps only each entry's argmax row; backward rebuilds the gradient from
    those rows (a one-hot (rows, V) matrix times W, and its transpose times x for W). Training a 49,152-token head
    no longer stores every kept position's logits for backpropagation. Two ways to compute the same thing, tested
    equal to ``max_logits_packed`` in value and gradient: one text at a time (``_MaxProject``, the CPU's: small
    GEMMs cost it nothing extra) and in padded chunks with a sparse backward (``_MaxProjectBatched``, the GPU's:
    far fewer kernel launches, each chunk holding at most ``budget`` padded logits); ``batched`` None picks by the
    device.
    """
    if batched if batched is not None else x.device.type == "cuda":
        return _MaxProjectBatched.apply(x, lengths, weight, bias, budget)
    return _MaxProject.apply(x, lengths, weight, bias)


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
