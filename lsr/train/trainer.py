"""The training loop for any SparseEncoder: MLM or causal backbones, LoRA or full fine-tuning, optional dense head.

One optimiser step = ``grad_accum`` micro-batches of ``batch_size`` queries, each with a group of documents
(positive + hard negatives, lsr.train.data). Per micro-batch: encode queries and documents with the same model,
score every query against every document of the batch, and add the configured losses (lsr.train.losses) and
sparsity regularisers (lsr.train.regularizers); the dense head's scores, when the encoder has one, get the same
ranking losses. bf16 autocast on CUDA; gradient checkpointing through Hugging Face's switch.

A run folder holds ``run.json`` (the resolved config, git commit, data fingerprints, versions), ``log.jsonl``
(every loss part, non-zeros per query and document, learning rate, throughput, peak GPU memory),
``checkpoints/`` (lsr.train.checkpoint) and ``model/`` (the final encoder, SparseEncoder.save).
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import random
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from indexer.manifest import sha256_file

from ..progress import progress as progress_bar
from ..sparse_encoder import attention_kernels
from ..transfer import to_device
from . import checkpoint, losses, regularizers
from .config import TrainConfig
from .data import MANIFEST, TRAIN_FILE, Batch, TrainSet

logger = logging.getLogger(__name__)


def git_commit() -> str:
    try:
        root = Path(__file__).resolve().parents[2]
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True)
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def check_device(device: str) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: this machine has no CUDA GPU (torch {torch.__version__}); use cpu")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu or cuda[:N], not {device!r}")
    return dev


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def ranking_parts(
    scores_all: torch.Tensor, group_size: int, target: torch.Tensor | None, lo: Any, temperature: float,
    kl_temperature: float, prefix: str = "",
) -> dict[str, torch.Tensor]:  # fmt: skip
    """The weighted ranking losses of [loss] on (B, B * G) scores: query b's group sits at columns b*G .. b*G+G-1,
    its positive first; ``target`` is the teacher ensemble's (B, G) scores (needed by kl and margin_mse)."""
    B, G = scores_all.shape[0], group_size
    positive = torch.arange(B, device=scores_all.device) * G
    group = scores_all.gather(1, positive[:, None] + torch.arange(G, device=scores_all.device)[None, :])
    parts: dict[str, torch.Tensor] = {}
    if lo.infonce:
        parts[prefix + "infonce"] = lo.infonce * losses.infonce(scores_all, positive, temperature)
    if lo.kl:
        parts[prefix + "kl"] = lo.kl * losses.listwise_kl(group, target, kl_temperature, lo.teacher_temperature)
    if lo.margin_mse:
        parts[prefix + "margin_mse"] = lo.margin_mse * losses.margin_mse(group, target)
    return parts


def dense_ranking_parts(
    scores_all: torch.Tensor, group_size: int, target: torch.Tensor | None, lo: Any
) -> dict[str, torch.Tensor]:
    """``ranking_parts`` on a dense head's cosine scores: at ``dense_temperature`` (InfoNCE and KL alike), named
    ``dense_*`` and weighted by ``[loss] dense``."""
    t = lo.dense_temperature
    return {k: lo.dense * v for k, v in ranking_parts(scores_all, group_size, target, lo, t, t, "dense_").items()}


DOCUMENT_FOLDER = "document"  # where a "lookup-joint" model keeps its document encoder, inside the lookup


class _WithLookup(torch.nn.Module):
    """What a "lookup-joint" run checkpoints: the encoder's weights and the query lookup's."""

    def __init__(self, encoder: torch.nn.Module, query_lookup: torch.nn.Parameter) -> None:
        super().__init__()
        self.encoder = encoder
        self.query_lookup = query_lookup


def process_group() -> tuple[int, int]:
    """(rank, world size) of the torch.distributed group this process is in, (0, 1) when there is none."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class Trainer:
    """Trains an encoder as the config says. Under ``torch.distributed`` (``torchrun ... python -m lsr.train``)
    it trains data-parallel: process r of W takes batches r, r + W, ... of each group of W consecutive batches
    (a batch of B queries per process, W x B per step), the gradients are averaged over the processes after each
    step's micro-batches, FLOPS is computed over the global batch (``regularizers.flops``), and only rank 0 writes
    the log, checkpoints and the model. With per-query losses (KL, MarginMSE) and FLOPS, W processes of batch B
    take the same steps as one process of batch W x B (tested); InfoNCE's in-batch negatives stay per process."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.rank, self.world = process_group()
        self.device = check_device(cfg.run.device)
        if self.world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", self.rank)))
            torch.cuda.set_device(self.device)
        self.out = Path(cfg.run.out)
        seed_everything(cfg.run.seed)
        self.data = TrainSet.load(cfg.data.train, cfg.data.sources)
        self._idf: np.ndarray | None = None  # of the training documents, when a start needs it (_document_idf)
        self.encoder = self._load_encoder()
        self.teacher = self._load_disco_teacher()
        # "lookup-joint": queries are a trained weight per token (IDF start), the encoder sees documents only
        self.query_lookup: torch.nn.Parameter | None = None
        self.trained: torch.nn.Module = self.encoder  # what checkpoints hold
        params = [p for p in self.encoder.parameters() if p.requires_grad]
        if not params:
            raise ValueError("nothing to train: every weight is frozen")
        groups: list[dict[str, Any]] = [{"params": params}]
        if cfg.model.queries == "lookup-joint":
            start = torch.from_numpy(self._document_idf(self.encoder)).to(self.device)
            self.query_lookup = torch.nn.Parameter(start)
            self.trained = _WithLookup(self.encoder, self.query_lookup)
            groups.append({"params": [self.query_lookup], "lr": cfg.model.lookup_lr, "weight_decay": 0.0})
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
        self.total_steps = self._total_steps()
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.identity = {"vocab_hash": self.encoder.vocab_hash, "base": cfg.model.base}

    # ------------------------------------------------------------------ setup
    def _load_encoder(self):  # noqa: ANN202
        from lsr import SparseEncoder

        m = self.cfg.model
        enc = SparseEncoder.from_pretrained(m.base, **m.settings)
        if m.head_bias_start:
            if enc.backbone.head_bias is None:
                raise ValueError("[model] head_bias_start needs an encoder with head_bias = true")
            with torch.no_grad():
                enc.backbone.head_bias.fill_(m.head_bias_start)
        if m.residual_init == "idf":
            if enc.residual is None:
                raise ValueError("[model] residual_init = 'idf' needs an encoder with literal_residual = true")
            enc.residual.start_from_idf(self._document_idf(enc), m.residual_idf_scale)
            logger.info("literal residual starts from the IDF of %d training documents", len(self.data.docs))
        if m.lora:
            enc.add_lora(r=m.lora_r, alpha=m.lora_alpha, dropout=m.lora_dropout, target_modules=m.lora_targets)
            for n, p in enc.named_parameters():
                p.requires_grad = "lora_" in n or (
                    m.train_head and (n.startswith(("residual.", "dense_proj.")) or n == "backbone.head_bias")
                )
        if m.gradient_checkpointing:
            enc.backbone.lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        return enc.to(self.device).train()

    def _document_idf(self, enc) -> np.ndarray:  # noqa: ANN001
        """The training documents' IDF over the encoder's tokens, tokenised once for every start that uses it."""
        if self._idf is None:
            from .lookup import document_idf

            self._idf = document_idf(enc, list(self.data.docs.values()))
        return self._idf

    def _load_disco_teacher(self):  # noqa: ANN202
        if not self.cfg.loss.disco:
            return None
        from lsr import SparseEncoder

        teacher = SparseEncoder.from_pretrained(self.cfg.loss.disco_teacher, device=str(self.device))
        if teacher.vocab_hash != self.encoder.vocab_hash:
            raise ValueError(
                f"[loss] disco_teacher {self.cfg.loss.disco_teacher!r} has another vocabulary than the student"
            )
        for p in teacher.parameters():
            p.requires_grad = False
        return teacher.eval()

    def _usable_batches(self) -> int:
        """Batches of an epoch that are trained on: whole groups of one batch per process."""
        n = self.data.steps_per_epoch(self.cfg.data.batch_size)
        return n - n % self.world

    def _total_steps(self) -> int:
        per_epoch = self._usable_batches() // self.world // self.cfg.optim.grad_accum
        if per_epoch < 1:
            raise ValueError(
                f"{len(self.data)} training queries are fewer than one step "
                f"(batch_size {self.cfg.data.batch_size} x grad_accum {self.cfg.optim.grad_accum} x {self.world} "
                "processes)"
            )
        total = per_epoch * self.cfg.optim.epochs
        return min(total, self.cfg.optim.max_steps) if self.cfg.optim.max_steps else total

    def _lr_factor(self, step: int) -> float:
        o = self.cfg.optim
        if step < o.warmup_steps:
            return (step + 1) / o.warmup_steps
        if o.schedule == "constant":
            return 1.0
        return max(0.0, (self.total_steps - step) / max(1, self.total_steps - o.warmup_steps))

    # ------------------------------------------------------------------ one micro-batch
    def loss(self, batch: Batch, step: int) -> tuple[torch.Tensor, dict[str, Any]]:
        cfg, enc, dev = self.cfg, self.encoder, self.device
        q_tok = enc.layout.tokenize(batch.queries)
        q_in = None if self.query_lookup is not None else enc.layout.batch(q_tok, enc.config.query_max_length, dev)
        d_in = enc.layout.batch(enc.layout.tokenize(batch.docs), enc.config.max_length, dev)
        half = dev.type == "cuda" and cfg.run.bf16
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=half)
        with autocast, attention_kernels(dev, torch.bfloat16 if half else torch.float32):
            if q_in is not None:
                q, q_dense = enc(q_in, "query")
            else:
                from .lookup import query_matrix

                q, q_dense = query_matrix(q_tok, self.query_lookup), None
            d, d_dense = enc(d_in, "document")
        q, d = q.float(), d.float()
        B, G = len(batch.queries), batch.group_size
        teachers = {n: to_device(torch.as_tensor(v), dev) for n, v in batch.teachers.items()}
        lo = cfg.loss
        target = None
        if lo.kl or lo.margin_mse:
            target = losses.ensemble_target(teachers, lo.teachers, lo.teacher_norm)
        parts = ranking_parts(q @ d.T, G, target, lo, lo.infonce_temperature, lo.kl_temperature)
        if lo.disco:
            t_in = q_in if q_in is not None else enc.layout.batch(q_tok, enc.config.query_max_length, dev)
            with torch.no_grad(), autocast:
                t_q, _ = self.teacher(t_in, "query")
            parts["disco"] = lo.disco * losses.disco(q, d, t_q.float(), lo.kl_temperature)
        if q_dense is not None and lo.dense:
            parts.update(dense_ranking_parts(q_dense.float() @ d_dense.float().T, G, target, lo))
        sp = cfg.sparsity
        reg = regularizers.flops if sp.kind == "flops" else regularizers.l1
        lam_q = regularizers.quadratic_warmup(sp.query, step, sp.warmup_steps)
        lam_d = regularizers.quadratic_warmup(sp.document, step, sp.warmup_steps)
        if sp.query:
            parts["reg_query"] = lam_q * reg(q)
        if sp.document:
            parts["reg_document"] = lam_d * reg(d, regularizers.above_threshold(d, sp.document_target_nnz))
        total = sum(parts.values())
        # kept on the device: read (one copy for all of them) only at a log step, so a step never waits for the GPU
        stats: dict[str, Any] = {k: v.detach() for k, v in parts.items()}
        stats["nnz_query"] = (q.detach() > 0).sum(dim=1).float().mean()
        stats["nnz_document"] = (d.detach() > 0).sum(dim=1).float().mean()
        stats["tokens"] = (q_in.tokens if q_in is not None else sum(map(len, q_tok))) + d_in.tokens
        stats["sequences"] = B + B * G
        return total, stats

    # ------------------------------------------------------------------ the loop
    def write_run_info(self) -> None:
        folder = Path(self.cfg.data.train)
        info = {
            "config": self.cfg.to_dict(),
            "git_commit": git_commit(),
            "data": {
                "folder": str(folder.resolve()),
                "train_sha256": sha256_file(folder / TRAIN_FILE),
                "manifest_sha256": sha256_file(folder / MANIFEST),
                "queries": len(self.data),
            },
            "versions": {"torch": torch.__version__, "python": platform.python_version()},
            "device": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else platform.processor(),
            "total_steps": self.total_steps,
            "trainable_parameters": sum(p.numel() for p in self.trained.parameters() if p.requires_grad),
        }
        self.out.mkdir(parents=True, exist_ok=True)
        from indexer.atomic import write_bytes

        write_bytes(self.out / "run.json", (json.dumps(info, indent=2, default=str) + "\n").encode())

    def train(
        self, resume: bool = True, show_progress: bool = True, stop_after: int | None = None,
        time_budget_s: float | None = None,
    ) -> Path | None:  # fmt: skip
        """Run to the end (or resume from the latest checkpoint); returns the saved model folder.

        ``stop_after`` optimiser steps or ``time_budget_s`` seconds end this call early with a checkpoint and return
        None; the next call resumes exactly there (for machines that hold a job for a limited time).
        """
        cfg = self.cfg
        ckpt_dir = self.out / "checkpoints"
        pos = checkpoint.Position()
        last = checkpoint.latest(ckpt_dir) if resume else None
        if last is not None:
            pos = self._restore(last)
        elif ckpt_dir.is_dir() and any(ckpt_dir.iterdir()) and not resume:
            raise FileExistsError(f"{self.out} already holds checkpoints; resume, or choose another [run] out")
        lead = self.rank == 0  # the one process that writes
        if lead:
            self.write_run_info()
        progress = progress_bar(self.total_steps, show_progress and lead, "train", unit="step", initial=pos.step)
        log = open(self.out / "log.jsonl", "a", encoding="utf-8") if lead else open(os.devnull, "w")  # noqa: SIM115
        usable = self._usable_batches()
        window: dict[str, Any] = {}  # sums since the last log step, device tensors until it
        unchecked: list[tuple[int, torch.Tensor]] = []  # (step, loss) not yet checked to be finite
        t0, micro = time.perf_counter(), 0
        started, first_step, stopped = time.perf_counter(), pos.step, False
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        try:
            while pos.step < self.total_steps:
                if pos.batch >= usable:
                    pos.epoch, pos.batch = pos.epoch + 1, 0
                    continue
                batches = self.data.batches(
                    cfg.run.seed, pos.epoch, pos.batch, cfg.data.batch_size, cfg.data.group_size,
                    cfg.data.negatives_depth,
                )  # fmt: skip
                for k, batch in batches:
                    if k >= usable:
                        pos.batch = usable
                        break
                    if k % self.world != self.rank:  # another process's batch
                        continue
                    total, stats = self.loss(batch, pos.step)
                    unchecked.append((pos.step, total.detach()))
                    (total / cfg.optim.grad_accum).backward()
                    for key, v in stats.items():
                        window[key] = window.get(key, 0.0) + v
                    micro += 1
                    pos.batch = (k // self.world + 1) * self.world  # past this group of batches
                    if micro % cfg.optim.grad_accum:
                        continue
                    if self.world > 1:
                        self._average_gradients()
                    grad_norm = torch.nn.utils.clip_grad_norm_(
                        [p for p in self.trained.parameters() if p.requires_grad], cfg.optim.max_grad_norm
                    )
                    self.optimizer.step()
                    self.scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
                    pos.step += 1
                    progress.update(1)
                    window["grad_norm"] = window.get("grad_norm", 0.0) + grad_norm.detach() * cfg.optim.grad_accum
                    if pos.step % cfg.run.log_every == 0 or pos.step == self.total_steps:
                        _check_finite(unchecked)
                        self._log(log, window, micro, time.perf_counter() - t0, pos)
                        window, t0, micro = {}, time.perf_counter(), 0
                    if lead and cfg.run.save_every and pos.step % cfg.run.save_every == 0:
                        _check_finite(unchecked)  # never a checkpoint of weights that a non-finite loss touched
                        self._save_checkpoint(ckpt_dir, pos)
                    if pos.step >= self.total_steps:
                        break
                    stop = (stop_after is not None and pos.step - first_step >= stop_after) or (
                        time_budget_s is not None and time.perf_counter() - started >= time_budget_s
                    )
                    if self.world > 1 and time_budget_s is not None:  # every process stops at the same step
                        import torch.distributed as dist

                        flag = torch.tensor([float(stop)], device=self.device)
                        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                        stop = bool(flag.item())
                    if stop:
                        stopped = True
                        break
                if stopped:
                    break
        finally:
            progress.close()
            log.close()
        _check_finite(unchecked)
        if lead:
            self._save_checkpoint(ckpt_dir, pos)
        if stopped:
            logger.info("stopped at step %d of %d; run again to resume", pos.step, self.total_steps)
            self._barrier()
            return None
        folder = self.save_model(self.out / "model") if lead else self.out / "model"
        self._barrier()
        return folder

    def _average_gradients(self) -> None:
        """Sum the trainable gradients over the processes (one flat all-reduce) and divide by their number."""
        import torch.distributed as dist

        params = [p for p in self.trained.parameters() if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for p in params:
            p.grad.copy_(flat[offset : offset + p.numel()].view_as(p))
            offset += p.numel()

    def _barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def _log(self, log: Any, window: dict[str, Any], micro: int, seconds: float, pos: checkpoint.Position) -> None:
        rec: dict[str, Any] = {"step": pos.step, "epoch": pos.epoch}
        tokens, seqs = window.pop("tokens", 0.0), window.pop("sequences", 0.0)
        keys = sorted(window)
        on_device = [k for k in keys if isinstance(window[k], torch.Tensor)]
        if on_device:  # one copy from the device for every sum
            values = torch.stack([window[k].float().reshape(()) for k in on_device]).tolist()
            window.update(zip(on_device, values))
        rec.update({k: float(window[k]) / max(1, micro) for k in keys})
        rec["loss"] = sum(
            v for k, v in rec.items() if k not in ("step", "epoch", "grad_norm") and not k.startswith("nnz")
        )
        rec["lr"] = self.scheduler.get_last_lr()[0]
        rec["sequences_per_s"] = seqs / seconds
        rec["tokens_per_s"] = tokens / seconds
        if self.device.type == "cuda":
            rec["peak_gpu_mb"] = torch.cuda.max_memory_allocated(self.device) / 2**20
            torch.cuda.reset_peak_memory_stats(self.device)
        log.write(json.dumps(rec) + "\n")
        log.flush()
        logger.info(
            "step %d loss %.4f nnz q %.1f d %.1f lr %.2e %.1f seq/s",
            pos.step, rec["loss"], rec.get("nnz_query", 0), rec.get("nnz_document", 0), rec["lr"],
            rec["sequences_per_s"],
        )  # fmt: skip

    def _save_checkpoint(self, folder: Path, pos: checkpoint.Position) -> Path:
        dtype = getattr(torch, self.cfg.run.save_dtype)
        return checkpoint.save(folder, self.trained, self.optimizer, self.scheduler, pos, self.identity, dtype)

    def _restore(self, path: Path) -> checkpoint.Position:
        """Resume from a checkpoint: exactly from a full one; from one with only its portable weights, at its step
        with the optimiser's moments starting again (the scheduler is stepped to the same learning rate)."""
        if checkpoint.is_full(path):
            pos = checkpoint.load(path, self.trained, self.optimizer, self.scheduler, self.identity)
            logger.info("resumed from %s (step %d)", path, pos.step)
            return pos
        pos = checkpoint.load_weights(path, self.trained, self.identity)
        self.scheduler.last_epoch = pos.step - 1
        with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": on purpose here
            warnings.simplefilter("ignore", UserWarning)
            self.scheduler.step()  # the learning rate of step pos.step, as an exact resume would have it
        logger.warning(
            "warm start from %s (step %d): weights only, the optimiser's moments start again (not an exact resume)",
            path, pos.step,
        )  # fmt: skip
        return pos

    def save_latest(self) -> tuple[Path, int]:
        """The latest checkpoint's weights saved as the run's ``model/`` (for a run stopped early by ``--minutes`` or
        ``stop_after`` on a machine that is about to go: its model can be evaluated now, and running the same
        command again still resumes from the checkpoint). Returns the folder and the checkpoint's step."""
        last = checkpoint.latest(self.out / "checkpoints")
        if last is None:
            raise FileNotFoundError(f"{self.out}: no checkpoint to save a model from")
        pos = self._restore(last)
        folder = self.save_model(self.out / "model")
        logger.info("saved the model of step %d (of %d) in %s", pos.step, self.total_steps, folder)
        return folder, pos.step

    def save_model(self, folder: Path) -> Path:
        enc = self.encoder
        if self.cfg.model.gradient_checkpointing:
            enc.backbone.lm.gradient_checkpointing_disable()
        if self.query_lookup is not None:  # an inference-free model: the lookup, its document encoder inside
            from indexer.atomic import staged
            from lsr.inference_free import InferenceFreeEncoder, LookupConfig

            config = LookupConfig(DOCUMENT_FOLDER, enc.vocab_size, enc.vocab_hash, dense=False)
            weight = self.query_lookup.detach().float().cpu().numpy()
            with staged(folder, overwrite=True) as work:
                enc.save(work / DOCUMENT_FOLDER, dtype=self.cfg.run.save_dtype)
                InferenceFreeEncoder(enc, config, weight).write(work)
            return folder
        if enc.fits_sentence_transformers:  # one folder that sentence-transformers loads too
            return enc.save_sentence_transformers(folder, dtype=self.cfg.run.save_dtype)
        return enc.save(folder, dtype=self.cfg.run.save_dtype)


def _check_finite(unchecked: list[tuple[int, torch.Tensor]]) -> None:
    """Raise on the first non-finite loss among the steps not checked yet (one copy from the device for all of
    them), and forget them. Checked at every log step and before every checkpoint, not every step: a check is a
    wait for the GPU."""
    if not unchecked:
        return
    values = torch.stack([v.float().reshape(()) for _, v in unchecked]).tolist()
    steps = [s for s, _ in unchecked]
    unchecked.clear()
    for step, value in zip(steps, values):
        if not math.isfinite(value):
            raise FloatingPointError(f"loss is {value} at step {step}; lower [optim] lr")
