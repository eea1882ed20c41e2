"""Ranking losses, pure tensor functions, each tested against a hand-computed example.

Shapes: B queries; each query has a *group* of G documents, the first of which is its positive
(``group[:, 0]``); ``scores_all`` is (B, N) against every document of the batch (N = B * G), where
query b's positive sits at column b * G. Teacher scores arrive per group as (B, G); a missing
teacher score is NaN and drops that document from the distillation terms.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch.nn import functional as F  # noqa: N812


def infonce(scores_all: torch.Tensor, positive: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """InfoNCE with in-batch and hard negatives (van den Oord et al. 2018, arXiv:1807.03748; DPR, Karpukhin et al.
    2020): cross-entropy of each query's positive against every document in the batch.

    ``positive`` (B,) long: the column of each query's positive in ``scores_all``.
    """
    return F.cross_entropy(scores_all / temperature, positive)


def margin_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """MarginMSE (Hofstätter et al. 2020, arXiv:2010.02666): mean squared error between the student's and the
    teacher's margins s(q, d+) - s(q, d-), over each group's negatives (columns 1..G-1); NaN teacher scores skipped.
    """
    s_margin = student[:, :1] - student[:, 1:]
    t_margin = teacher[:, :1] - teacher[:, 1:]
    ok = torch.isfinite(t_margin)
    if not bool(ok.any()):
        return student.sum() * 0.0
    return F.mse_loss(s_margin[ok], t_margin[ok])


def listwise_kl(
    student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0, teacher_temperature: float | None = None
) -> torch.Tensor:
    """Listwise KL(p_teacher || p_student) over each group, p = softmax(scores / temperature), averaged over queries
    (RocketQAv2, Ren et al. 2021; SPLADE v2 distillation, Formal et al. 2021, arXiv:2109.10086).
    ``teacher_temperature`` (default: ``temperature``) lets a teacher on another scale (a normalised ensemble in
    [0, n]) be sharpened apart from the student's dot products. Documents whose teacher score is NaN take no part in
    either distribution.
    """
    ok = torch.isfinite(teacher)
    neg_inf = torch.finfo(student.dtype).min
    t = torch.where(ok, teacher.to(student.dtype), torch.full_like(student, neg_inf)) / (
        teacher_temperature or temperature
    )
    s = torch.where(ok, student, torch.full_like(student, neg_inf)) / temperature
    p_t = torch.softmax(t, dim=-1)
    log_p_t = torch.log_softmax(t, dim=-1)
    log_p_s = torch.log_softmax(s, dim=-1)
    kl = torch.where(ok, p_t * (log_p_t - log_p_s), torch.zeros_like(p_t)).sum(dim=-1)
    return kl.mean()


def ensemble_target(
    teachers: Mapping[str, torch.Tensor], weights: Mapping[str, float], norm: str = "minmax"
) -> torch.Tensor:
    """Heterogeneous-ensemble distillation target (Geng et al. 2024, "Towards competitive search relevance for
    inference-free learned sparse retrievers", arXiv:2411.04403): each teacher's scores are normalised per query
    over its group (min-max to [0, 1], or z-score), then combined as a weighted sum. Teachers of different kinds
    (BM25, a sparse and a dense bi-encoder here) thus share one scale. A NaN score stays NaN in the target.
    """
    if not teachers:
        raise ValueError("the ensemble needs at least one teacher")
    missing = set(weights) - set(teachers)
    if missing:
        raise ValueError(f"weights name teachers without scores: {sorted(missing)}")
    total = None
    for name, w in weights.items():
        if w == 0:
            continue
        s = teachers[name]
        if norm == "minmax":
            lo = torch.where(torch.isfinite(s), s, torch.full_like(s, float("inf"))).amin(dim=-1, keepdim=True)
            hi = torch.where(torch.isfinite(s), s, torch.full_like(s, float("-inf"))).amax(dim=-1, keepdim=True)
            z = (s - lo) / (hi - lo).clamp(min=1e-9)
        elif norm == "zscore":
            ok = torch.isfinite(s)
            n = ok.sum(dim=-1, keepdim=True).clamp(min=1)
            mean = torch.where(ok, s, torch.zeros_like(s)).sum(dim=-1, keepdim=True) / n
            var = torch.where(ok, (s - mean) ** 2, torch.zeros_like(s)).sum(dim=-1, keepdim=True) / n
            z = (s - mean) / var.sqrt().clamp(min=1e-9)
        else:
            raise ValueError(f"norm must be 'minmax' or 'zscore', not {norm!r}")
        total = w * z if total is None else total + w * z
    if total is None:
        raise ValueError("every teacher weight is 0")
    return total


def disco(
    student_q: torch.Tensor, student_d: torch.Tensor, teacher_q: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """DiSCo-style score distillation (Lupart et al. 2025, SIGIR, arXiv:2410.14609): instead of pulling the student's
    query vector onto the teacher's, distil the *scores* the teacher's query vector gives the student's own document
    vectors: KL(softmax(t_q · D / T) || softmax(s_q · D / T)) over every document of the batch. The document side is
    shared (detached in the target), so the student keeps freedom in its query representation.
    """
    target = teacher_q.detach().to(student_d.dtype) @ student_d.detach().T
    return listwise_kl(student_q @ student_d.T, target, temperature)
