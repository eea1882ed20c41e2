"""Each loss and regulariser against a hand-computed example (lsr.train.losses, lsr.train.regularizers)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from lsr.train import losses, regularizers


def test_infonce_by_hand() -> None:
    scores = torch.tensor([[2.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 3.0]])
    positive = torch.tensor([0, 2])
    # query 0: -log(e^2 / (e^2 + 1 + e + 1)); query 1: -log(1 / (1 + e + 1 + e^3))
    want = (-math.log(math.e**2 / (math.e**2 + 2 + math.e)) - math.log(1 / (2 + math.e + math.e**3))) / 2
    assert losses.infonce(scores, positive).item() == pytest.approx(want, rel=1e-6)
    # a temperature of 2 halves every score
    want2 = -math.log(math.e / (math.e + 2 + math.e**0.5)) / 2 - math.log(1 / (2 + math.e**0.5 + math.e**1.5)) / 2
    assert losses.infonce(scores, positive, temperature=2.0).item() == pytest.approx(want2, rel=1e-6)


def test_margin_mse_by_hand() -> None:
    student = torch.tensor([[3.0, 1.0, 2.0]])
    teacher = torch.tensor([[1.0, 0.0, 0.5]])
    # student margins 2, 1; teacher margins 1, 0.5; errors 1, 0.5 -> (1 + 0.25) / 2
    assert losses.margin_mse(student, teacher).item() == pytest.approx(0.625)
    # a NaN teacher score drops that margin
    teacher_nan = torch.tensor([[1.0, float("nan"), 0.5]])
    assert losses.margin_mse(student, teacher_nan).item() == pytest.approx(0.25)


def test_listwise_kl_by_hand() -> None:
    student = torch.tensor([[1.0, 0.0]])
    teacher = torch.tensor([[0.0, 0.0]])
    # p_t = (1/2, 1/2); p_s = (e/(e+1), 1/(e+1)); KL = sum p_t log(p_t / p_s)
    ps = [math.e / (math.e + 1), 1 / (math.e + 1)]
    want = 0.5 * math.log(0.5 / ps[0]) + 0.5 * math.log(0.5 / ps[1])
    assert losses.listwise_kl(student, teacher).item() == pytest.approx(want, rel=1e-6)
    # identical distributions: 0; a teacher temperature sharpens only the teacher
    assert losses.listwise_kl(student, student.clone()).item() == pytest.approx(0.0, abs=1e-7)
    t = torch.tensor([[2.0, 0.0]])
    pt = [math.e / (math.e + 1), 1 / (math.e + 1)]  # softmax(t / 2)
    sharp = sum(p * math.log(p / q) for p, q in zip(pt, ps))
    assert losses.listwise_kl(student, t, temperature=1.0, teacher_temperature=2.0).item() == pytest.approx(
        sharp, abs=1e-7
    )
    # a NaN teacher score leaves that document out of both distributions
    s3 = torch.tensor([[1.0, 0.0, 5.0]])
    t3 = torch.tensor([[0.0, 0.0, float("nan")]])
    assert losses.listwise_kl(s3, t3).item() == pytest.approx(want, rel=1e-6)


def test_ensemble_target_by_hand() -> None:
    bm25 = torch.tensor([[10.0, 5.0, 0.0]])
    dense = torch.tensor([[0.5, 0.9, 0.1]])
    got = losses.ensemble_target({"bm25": bm25, "dense": dense}, {"bm25": 1.0, "dense": 2.0})
    # min-max: bm25 -> (1, .5, 0); dense -> (.5, 1, 0); weighted sum -> (2, 2.5, 0)
    assert torch.allclose(got, torch.tensor([[2.0, 2.5, 0.0]]))
    z = losses.ensemble_target({"bm25": bm25}, {"bm25": 1.0}, norm="zscore")
    sd = math.sqrt(((10 - 5) ** 2 + 0 + (0 - 5) ** 2) / 3)
    assert torch.allclose(z, torch.tensor([[5 / sd, 0.0, -5 / sd]]))
    with pytest.raises(ValueError, match="without scores"):
        losses.ensemble_target({"bm25": bm25}, {"dense": 1.0})
    with pytest.raises(ValueError, match="norm"):
        losses.ensemble_target({"bm25": bm25}, {"bm25": 1.0}, norm="rank")


def test_disco_by_hand() -> None:
    d = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    student_q = torch.tensor([[1.0, 0.0]])
    teacher_q = torch.tensor([[0.0, 0.0]])
    # student scores (1, 0), teacher scores (0, 0): the KL of the listwise example above
    ps = [math.e / (math.e + 1), 1 / (math.e + 1)]
    want = 0.5 * math.log(0.5 / ps[0]) + 0.5 * math.log(0.5 / ps[1])
    assert losses.disco(student_q, d, teacher_q).item() == pytest.approx(want, rel=1e-6)
    # the target is detached: only the student's query vector gets a gradient through the KL's student side
    q = student_q.clone().requires_grad_()
    dd = d.clone().requires_grad_()
    losses.disco(q, dd, teacher_q).backward()
    assert q.grad is not None and float(q.grad.abs().sum()) > 0


def test_flops_and_l1_by_hand() -> None:
    w = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]])
    # column means (2, 0, 1) -> 4 + 0 + 1
    assert regularizers.flops(w).item() == pytest.approx(5.0)
    # row sums (3, 3) -> mean 3
    assert regularizers.l1(w).item() == pytest.approx(3.0)
    keep = regularizers.above_threshold(w, 1)  # row 0 has 2 non-zeros, row 1 has 1
    assert keep.tolist() == [True, False]
    assert regularizers.flops(w, keep).item() == pytest.approx(1 + 4)
    assert regularizers.above_threshold(w, None) is None
    assert regularizers.flops(w, torch.tensor([False, False])).item() == 0.0


def test_quadratic_warmup_schedule() -> None:
    assert regularizers.quadratic_warmup(1e-3, 0, 100) == 0.0
    assert regularizers.quadratic_warmup(1e-3, 50, 100) == pytest.approx(2.5e-4)
    assert regularizers.quadratic_warmup(1e-3, 100, 100) == pytest.approx(1e-3)
    assert regularizers.quadratic_warmup(1e-3, 500, 100) == pytest.approx(1e-3)
    assert regularizers.quadratic_warmup(1e-3, 0, 0) == pytest.approx(1e-3)


@given(st.integers(1, 5), st.integers(1, 9), st.integers(1, 7), st.integers(0, 2**31 - 1))
def test_packed_max_pooling_equals_chunked_in_value_and_gradient(B: int, T: int, chunk: int, seed: int) -> None:
    """The training path of max pooling (head over kept positions only, segment max) against the inference path
    (head over every position in chunks, masked running max): same maxima, same gradients."""
    from lsr import pooling

    g = torch.Generator().manual_seed(seed)
    H, V = 4, 13
    hidden = torch.randn(B, T, H, generator=g, dtype=torch.float64, requires_grad=True)
    keep = torch.rand(B, T, generator=g) > 0.4
    W = torch.randn(V, H, generator=g, dtype=torch.float64, requires_grad=True)

    def head(x: torch.Tensor) -> torch.Tensor:
        return x @ W.T

    a = pooling.saturate(pooling.max_logits(hidden, keep, head, V, chunk))
    b = pooling.saturate(pooling.max_logits_packed(hidden, keep, head))
    assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)  # one GEMM per chunk or per packing: last-bit rounding
    if not keep.any():  # nothing pooled anywhere: every weight is 0 on both paths
        assert not b.any()
        return
    ga = torch.autograd.grad((a * torch.arange(V)).sum(), [hidden, W])
    gb = torch.autograd.grad((b * torch.arange(V)).sum(), [hidden, W])
    for x, y in zip(ga, gb):
        assert torch.allclose(x, y, rtol=1e-12, atol=1e-12)


@given(st.integers(1, 5), st.integers(1, 9), st.booleans(), st.integers(0, 2**31 - 1), st.booleans(),
       st.integers(1, 60))  # fmt: skip
def test_lean_max_projection_equals_the_packed_path_in_value_and_gradient(
    B: int, T: int, bias: bool, seed: int, batched: bool, budget: int
) -> None:
    """max_project_packed (argmax rows kept, logits recomputed in backward), one text at a time or in padded chunks
    of at most ``budget`` logits with a sparse backward, against max_logits_packed (autograd over the stored
    logits): same maxima, same gradients for the inputs, the weight and the bias."""
    from lsr import pooling

    g = torch.Generator().manual_seed(seed)
    H, V = 4, 13
    hidden = torch.randn(B, T, H, generator=g, dtype=torch.float64, requires_grad=True)
    keep = torch.rand(B, T, generator=g) > 0.4
    W = torch.randn(V, H, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(V, generator=g, dtype=torch.float64, requires_grad=True) if bias else None

    def head(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(x, W, b)

    want = pooling.saturate(pooling.max_logits_packed(hidden, keep, head))
    lengths = keep.sum(dim=1)  # a budget from one text per chunk to all of them
    got = pooling.saturate(pooling.max_project_packed(hidden[keep], lengths, W, b, batched=batched, budget=budget))
    assert torch.allclose(want, got, rtol=1e-12, atol=1e-12)
    if not keep.any():
        assert not got.any()
        return
    params = [hidden, W] + ([b] if bias else [])
    gw = torch.autograd.grad((want * torch.arange(V)).sum(), params)
    gg = torch.autograd.grad((got * torch.arange(V)).sum(), params)
    for x, y in zip(gw, gg):
        assert torch.allclose(x, y, rtol=1e-10, atol=1e-12)


def _flops_worker(rank: int, world: int, init: str, out: str) -> None:
    import torch.distributed as dist

    from lsr.train import regularizers

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        g = torch.Generator().manual_seed(7)
        full = torch.rand(12, 9, generator=g, dtype=torch.float64) * (torch.rand(12, 9, generator=g) > 0.5)
        mask = full.sum(dim=1) > 1.0
        rows = torch.arange(12).chunk(world)[rank]
        w = full[rows].clone().requires_grad_(True)
        value = regularizers.flops(w, mask[rows])
        value.backward()
        torch.save({"value": value.detach(), "grad": w.grad, "rows": rows}, f"{out}/{rank}.pt")
        dist.barrier()  # no process tears gloo down while another still talks to it
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("world", [2, 3])
def test_flops_over_processes_equals_flops_over_the_global_batch(tmp_path, world: int) -> None:
    """Data parallelism (gloo, real processes): every process gets the FLOPS value of the whole batch (its
    document threshold mask included), and its gradient, divided by the world size as DDP averages, is the
    single-process gradient of its rows."""
    import torch.multiprocessing as mp

    from lsr.train import regularizers

    mp.spawn(_flops_worker, args=(world, f"file://{tmp_path}/init", str(tmp_path)), nprocs=world, join=True)
    g = torch.Generator().manual_seed(7)
    full = torch.rand(12, 9, generator=g, dtype=torch.float64) * (torch.rand(12, 9, generator=g) > 0.5)
    mask = full.sum(dim=1) > 1.0
    full.requires_grad_(True)
    want = regularizers.flops(full, mask)
    want.backward()
    for rank in range(world):
        got = torch.load(tmp_path / f"{rank}.pt")
        assert torch.allclose(got["value"], want.detach(), rtol=1e-12)
        assert torch.allclose(got["grad"] / world, full.grad[got["rows"]], rtol=1e-10, atol=1e-15)
    per_process = sum(regularizers.flops(full.detach()[r], mask[r]) for r in torch.arange(12).chunk(world)) / world
    assert per_process > want  # what a per-process mean would have computed: a different, larger value
