"""SparseEncoder: texts -> sparse vectors over a language model's vocabulary (and optionally a dense vector).

Backbones (lsr.backbone): an MLM encoder (SPLADE v2+, Formal et al. 2021) or a decoder-only LLM
(Mistral-SPLADE, Doshi et al. 2024: LM-head logits, echo input, optional bidirectional
attention, LoRA). Pooling (lsr.pooling): w_v = max over the text's tokens of log(1 + ReLU(logit)),
or the last token's logits (PromptReps, Zhuang et al. 2024); PROSPER's literal residual and
lexical focusing window (Song et al. 2025) as options; a dense vector from the same forward pass.

Throughput: texts are tokenized once (in a background thread, overlapping the model), sorted
by length so batches carry little padding, the (B, T, V) logits are never held whole (running
max over token chunks sized to a memory budget), and only the non-zeros leave the device.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from indexer import SparseBatch

from . import fast_head, heap, pooling
from .backbone import Backbone, add_lora, detect_kind, model_class
from .config import CONFIG_NAME, SparseEncoderConfig
from .inference_free import InferenceFreeEncoder, is_lookup_folder
from .layout import Batch, Layout
from .models import resolve
from .progress import progress as progress_bar
from .vocab import vocab_hash

logger = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
ST_MODULES = "modules.json"  # a folder in sentence-transformers' SparseEncoder layout (save_sentence_transformers)
SIDES = ("query", "document")


class Encoding(NamedTuple):
    sparse: SparseBatch
    dense: np.ndarray | None  # (n, hidden) float32, L2-normalised, when the config has a dense head


class TiedResidual(nn.Module):
    """PROSPER's w' = FC(h_last) over the whole vocabulary, made compact: FC(h) = W_head (G h) + b.

    W_head is the backbone's own (V, H') vocabulary projection (for tied LLMs, the input embeddings), G an (H', H)
    map and b a (V,) bias, both trained and zero-initialised (a fresh residual leaves the SPLADE vector unchanged).
    On SmolLM2 that is 0.38 M trained parameters instead of the 28 M of a full 576 x 49,152 layer.
    """

    def __init__(self, hidden_size: int, head_dim: int, vocab_size: int) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden_size, head_dim, bias=False)
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        nn.init.zeros_(self.proj.weight)

    def forward(self, h_last: torch.Tensor, head_weight: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(self.proj(h_last), head_weight.to(h_last.dtype), self.bias.to(h_last.dtype))

    @torch.no_grad()
    def start_from_idf(self, idf: np.ndarray, scale: float) -> None:
        """Start as a lexical matcher: b = -scale * idf / max(idf), for (V,) non-negative IDF values.

        With G still zero, w' = b, so the literal residual lifts each of a text's own tokens by
        scale * (idf - min idf) / max(idf): a fresh encoder scores a query against a document like binary-tf IDF
        over shared tokens (plus the LM head's expansion), and training starts from there instead of from zero.
        """
        idf = np.asarray(idf, dtype=np.float64)
        if idf.shape != tuple(self.bias.shape) or (idf < 0).any() or idf.max() <= 0:
            raise ValueError(f"idf must be {tuple(self.bias.shape)} non-negative values, not all zero")
        self.bias.copy_(torch.from_numpy(-scale * idf / idf.max()).to(self.bias.dtype))


def _identity_map(size: int) -> nn.Linear:
    layer = nn.Linear(size, size, bias=False)
    nn.init.eye_(layer.weight)
    return layer


class SparseEncoder(nn.Module):
    """A sparse (and optionally dense) text encoder; ``forward`` is differentiable, ``encode_*`` is inference."""

    def __init__(self, lm: nn.Module, tokenizer: Any, config: SparseEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.backbone = Backbone(lm, config.kind, bidirectional=config.bidirectional, head_bias=config.head_bias)
        if self.backbone.vocab_size != config.vocab_size:
            raise ValueError(f"config says vocab_size {config.vocab_size}, the model has {self.backbone.vocab_size}")
        self.layout = Layout(tokenizer, echo=config.echo, pool_special=config.pool_special_tokens)
        self.residual: TiedResidual | None = None
        if config.literal_residual:
            head_weight, _ = self.backbone.projection()
            self.residual = TiedResidual(self.backbone.hidden_size, int(head_weight.shape[1]), config.vocab_size)
        if config.dense_layer >= self.backbone.num_layers:
            raise ValueError(f"dense_layer {config.dense_layer}: the backbone has {self.backbone.num_layers} blocks")
        self.dense_proj: nn.Linear | None = None
        if config.dense_projection:
            self.dense_proj = _identity_map(self.backbone.hidden_size)
        # CPU inference of max pooling goes through the native int8-screened head (exact in float32)
        self.use_fast_head = fast_head.available()
        self._fast_head = fast_head.FastHead()
        self.token_chunk: int | None = None  # positions per head call; None sizes it to a memory budget
        self.workers: int | None = None  # CPU batches encoded at once; None: torch's thread count
        self.stats = {"texts": 0, "tokens": 0, "padded_tokens": 0, "truncated": 0, "peak_logits_bytes": 0}

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def from_pretrained(
        cls, name: str | Path, *, device: str = "cpu", dtype: str = "float32", **settings: Any
    ) -> SparseEncoder:
        """Load a saved encoder folder, or build one on a Hugging Face model (alias, folder, .gguf, cached id).
        A folder of inference-free queries (lsr.inference_free) loads as an InferenceFreeEncoder.

        ``settings`` are SparseEncoderConfig fields (pooling, echo, literal_residual, ...); for a
        saved encoder only max_length / query_max_length may be changed.
        """
        from transformers import AutoConfig, AutoTokenizer

        src = resolve(name)
        torch_dtype = getattr(torch, dtype)
        if is_lookup_folder(src.path):  # inference-free queries over a document encoder (lsr.inference_free)
            if settings:
                raise ValueError(f"an inference-free encoder's settings are fixed: {sorted(settings)}")
            return InferenceFreeEncoder.load(src.path, device=device, dtype=dtype)  # type: ignore[return-value]
        if (src.path / CONFIG_NAME).is_file():
            config = SparseEncoderConfig.load(src.path)
            changed = set(settings) - {"max_length", "query_max_length"}
            if changed:
                raise ValueError(f"a saved encoder's settings are fixed by its weights: {sorted(changed)}")
            for k, v in settings.items():
                setattr(config, k, v)
            config.__post_init__()
            tokenizer = AutoTokenizer.from_pretrained(src.path)
            if config.base_sha256:  # adapters and heads only, on base weights from elsewhere
                enc = cls._load_adapters(src.path, config, tokenizer)
            elif (src.path / ST_MODULES).is_file():  # sentence-transformers layout: the backbone's own weights
                lm = model_class(config.kind).from_pretrained(src.path, dtype=torch.float32)
                enc = cls(lm, tokenizer, config)
            else:
                hf_config = AutoConfig.from_pretrained(src.path)
                lm = model_class(config.kind).from_config(hf_config, dtype=torch.float32)
                enc = cls(lm, tokenizer, config)
                if config.lora:
                    add_lora(enc.backbone, **config.lora)
                from safetensors.torch import load_model

                load_model(enc, src.path / WEIGHTS_NAME, strict=True)
            if vocab_hash(tokenizer, config.vocab_size) != config.vocab_hash:
                raise ValueError(f"{src.path}: the tokenizer does not match the recorded vocabulary hash")
            return enc.to(device=device, dtype=torch_dtype).eval()
        hf_config = AutoConfig.from_pretrained(src.path, **src.hf_kwargs())
        kind = detect_kind(hf_config)
        tokenizer = AutoTokenizer.from_pretrained(src.path, **src.hf_kwargs())
        lm = model_class(kind).from_pretrained(src.path, dtype=torch_dtype, **src.hf_kwargs())
        V = int(lm.get_output_embeddings().weight.shape[0])
        config = SparseEncoderConfig(
            kind=kind, vocab_size=V, vocab_hash=vocab_hash(tokenizer, V), base_model=str(name), **settings
        )
        return cls(lm, tokenizer, config).to(device=device, dtype=torch_dtype).eval()

    @classmethod
    def _load_adapters(cls, folder: Path, config: SparseEncoderConfig, tokenizer: Any) -> SparseEncoder:
        from safetensors.torch import load_file

        from indexer.manifest import sha256_file

        base = resolve(config.base_model)
        got = sha256_file(base.weights_file())
        if got != config.base_sha256:
            raise ValueError(
                f"{folder}: its adapters were trained on {config.base_model!r} with weights sha256 "
                f"{config.base_sha256[:12]}..., the installed {base.weights_file()} has {got[:12]}...; "
                "install the base named in the model card"
            )
        lm = model_class(config.kind).from_pretrained(base.path, dtype=torch.float32, **base.hf_kwargs())
        enc = cls(lm, tokenizer, config)
        if config.lora:
            add_lora(enc.backbone, **config.lora)
        state = load_file(str(folder / WEIGHTS_NAME))
        want = set(enc.trained_parts())
        if set(state) != want:
            raise ValueError(
                f"{folder / WEIGHTS_NAME}: holds {len(state)} tensors, this config's adapters and heads are "
                f"{len(want)} (missing {sorted(want - set(state))[:3]}, unexpected {sorted(set(state) - want)[:3]})"
            )
        enc.load_state_dict(state, strict=False)
        return enc

    def trained_parts(self) -> dict[str, torch.Tensor]:
        """The weights an adapter-only save holds: LoRA adapters, the residual head, the LM-head bias and the dense
        head's projection."""
        return {n: t for n, t in self.state_dict().items() if "lora_" in n or n.startswith(("residual.", "dense_proj."))
                or n == "backbone.head_bias"}  # fmt: skip

    def add_dense_head(self, pooling: str = "mean", layer: int = 0) -> SparseEncoder:
        """Give an encoder without one a dense head: ``pooling`` ("mean" or "last") of block ``layer``'s hidden states
        (0: the last ones) through a trained (H, H) projection that starts as the identity. The sparse vectors do
        not change; the head is then trained, alone on frozen features (lsr.train.dense_head) or with the rest."""
        if self.config.dense_pooling:
            raise ValueError("this encoder already has a dense head")
        config = dataclasses.replace(self.config, dense_pooling=pooling, dense_layer=layer, dense_projection=True)
        if layer >= self.backbone.num_layers:
            raise ValueError(f"dense_layer {layer}: the backbone has {self.backbone.num_layers} blocks")
        self.config = config
        p = self.backbone.lm.get_input_embeddings().weight
        self.dense_proj = _identity_map(self.backbone.hidden_size).to(device=p.device, dtype=p.dtype)
        return self

    def add_lora(self, r: int = 16, alpha: int = 32, dropout: float = 0.0, target_modules: list[str] | None = None):
        """Inject LoRA adapters (peft) into the backbone; the base weights are then usually frozen for training."""
        if self.config.lora:
            raise ValueError("this encoder already has LoRA adapters")
        self.config.lora = add_lora(self.backbone, r, alpha, dropout, target_modules)
        return self

    def save(self, folder: str | Path, dtype: str | None = None, adapters_only: bool | None = None) -> Path:
        """Write config, tokenizer and weights (one safetensors file, LoRA and heads included) atomically.

        ``dtype`` (float16, bfloat16, float32) stores the weights in that precision; loading casts them to the
        requested one, so a float16 file halves the size at the cost of rounding the weights once.
        ``adapters_only`` (default: when the encoder has LoRA adapters and its ``base_model``, an alias or folder,
        can be read again) writes only the LoRA adapters and the residual head, plus the sha256 of the base
        weights, which loading reads again and checks: megabytes instead of the whole backbone.
        """
        from safetensors.torch import save_file, save_model

        from indexer.atomic import staged
        from indexer.manifest import sha256_file

        base_file = self._base_weights_file()
        if adapters_only is None:
            adapters_only = bool(self.config.lora) and base_file is not None
        if adapters_only and base_file is None:
            raise ValueError(f"base_model {self.config.base_model!r} has no weights file to read the base from")
        config = dataclasses.replace(self.config, base_sha256="")
        if adapters_only:
            config.base_sha256 = sha256_file(base_file)
        final = Path(folder)
        with staged(final, overwrite=True) as work:
            config.save(work)
            self.tokenizer.save_pretrained(work)
            self.backbone.lm.config.save_pretrained(work)
            with _cast_for_saving(self, dtype):
                if adapters_only:
                    parts = {n: t.detach().contiguous() for n, t in self.trained_parts().items()}
                    save_file(parts, str(work / WEIGHTS_NAME))
                else:
                    save_model(self, str(work / WEIGHTS_NAME))
        return final

    def _base_weights_file(self) -> Path | None:
        if not self.config.base_model:
            return None
        try:
            src = resolve(self.config.base_model)
            if (src.path / CONFIG_NAME).is_file():  # a saved encoder, not a Hugging Face model: save it all
                return None
            return src.weights_file()
        except FileNotFoundError:
            return None

    @property
    def fits_sentence_transformers(self) -> bool:
        """Whether sentence-transformers' SparseEncoder (MLMTransformer + SpladePooling) computes this encoder."""
        c = self.config
        extras = c.literal_residual or c.focus_window or c.dense_pooling or c.lora or c.query_l2_norm
        return c.kind == "mlm" and c.pooling == "max" and c.pool_special_tokens and not extras

    def save_sentence_transformers(self, folder: str | Path, dtype: str | None = None) -> Path:
        """Write one folder that both sentence-transformers and this class load with the same vectors:
        ``sentence_transformers.SparseEncoder(folder)`` (MLMTransformer + SpladePooling('max'), written by
        sentence-transformers itself) and ``SparseEncoder.from_pretrained(folder)`` (its lsr_config.json).

        Only what that layout can express: an MLM backbone, max pooling over every token including
        [CLS]/[SEP] (``pool_special_tokens``), no residual, focusing window, dense head, LoRA or query norm.
        """
        import tempfile

        from sentence_transformers import SparseEncoder as STSparseEncoder

        from indexer.atomic import staged

        try:
            from sentence_transformers.sparse_encoder.modules import MLMTransformer, SpladePooling
        except ImportError:  # sentence-transformers < 6.1
            from sentence_transformers.sparse_encoder.models import MLMTransformer, SpladePooling

        c = self.config
        if not self.fits_sentence_transformers:
            raise ValueError(
                "sentence-transformers' SparseEncoder layout holds an MLM backbone with max pooling over every "
                "token (pool_special_tokens=True) and no residual, focusing window, dense head, LoRA or query norm"
            )
        final = Path(folder)
        with staged(final, overwrite=True) as work:
            with tempfile.TemporaryDirectory() as tmp:
                with _cast_for_saving(self.backbone.lm, dtype):
                    self.backbone.lm.save_pretrained(tmp)
                self.tokenizer.save_pretrained(tmp)
                body = MLMTransformer(tmp, max_seq_length=c.max_length)
                STSparseEncoder(modules=[body, SpladePooling(pooling_strategy="max")], device="cpu").save(str(work))
            # weights stored in half precision still load (and compute) in float32, as ours do
            hf = json.loads((work / "config.json").read_text())
            hf.update({k: "float32" for k in ("dtype", "torch_dtype") if k in hf} or {"dtype": "float32"})
            (work / "config.json").write_text(json.dumps(hf, indent=2, sort_keys=True) + "\n")
            c.save(work)
        return final

    # ------------------------------------------------------------------ properties
    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def vocab_hash(self) -> str:
        return self.config.vocab_hash

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def dense_dim(self) -> int | None:
        return self.backbone.hidden_size if self.config.dense_pooling else None

    def max_length_for(self, side: str) -> int:
        return self.config.query_max_length if side == "query" else self.config.max_length

    # ------------------------------------------------------------------ the model
    def forward(self, batch: Batch, side: str = "document") -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, V) sparse weights (dense tensor, mostly zeros) and the (B, H) dense vectors or None."""
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, not {side!r}")
        cfg, bb = self.config, self.backbone
        hidden, dense_hidden = bb.body_and_layer(batch.input_ids, batch.attention_mask, cfg.dense_layer)
        has_terms = batch.keep.any(dim=1, keepdim=True)
        h_last = pooling.gather_rows(hidden, batch.last)
        if cfg.pooling == "max" and self._fast_path(hidden):
            weight, bias = bb.projection()
            rows, lengths = batch.kept_rows(hidden)
            w = self._fast_head.max_weights(bb.pre_head(rows), lengths, weight, bias, torch.get_num_threads())
        elif cfg.pooling == "max" and torch.is_grad_enabled():  # training: kept positions only, argmax rows kept
            weight, bias = bb.projection()
            rows, lengths = batch.kept_rows(hidden)
            w = pooling.saturate(pooling.max_project_packed(bb.pre_head(rows), lengths, weight, bias))
        elif cfg.pooling == "max":
            w = pooling.saturate(pooling.max_logits(hidden, batch.keep, bb.head, cfg.vocab_size, self._chunk(hidden)))
        else:
            w = pooling.saturate(bb.head(h_last))
        if self.residual is not None:
            w_prime = self.residual(h_last, bb.projection()[0])
            indicator = pooling.input_indicator(batch.input_ids, batch.keep, cfg.vocab_size)
            w = pooling.literal_residual(w, w_prime, indicator)
        if cfg.focus_window:
            w = pooling.top_k(w, cfg.focus_k_query if side == "query" else cfg.focus_k_document)
        if side == "query" and cfg.query_l2_norm:
            w = pooling.l2_normalize(w)
        w = w * has_terms  # a text with no tokens has no terms (and never NaNs from an empty row)
        dense = None
        if cfg.dense_pooling:
            if cfg.dense_pooling == "last":
                pooled = pooling.gather_rows(dense_hidden, batch.last)
            else:
                pooled = pooling.mean_pool(dense_hidden, batch.keep)
            if self.dense_proj is not None:
                pooled = self.dense_proj(pooled)
            dense = pooling.l2_normalize(pooled) * has_terms
        return w, dense

    def _fast_path(self, hidden: torch.Tensor) -> bool:
        return (
            self.use_fast_head
            and hidden.device.type == "cpu"
            and hidden.dtype == torch.float32
            and not torch.is_grad_enabled()
        )

    def _chunk(self, hidden: torch.Tensor) -> int:
        B, T = hidden.shape[:2]
        per_position = B * self.config.vocab_size * hidden.element_size()
        budget = (1 << 30) if hidden.device.type == "cuda" else (256 << 20)  # bytes of logits per head call
        chunk = self.token_chunk or max(1, budget // per_position)
        chunk = min(chunk, T)
        self.stats["peak_logits_bytes"] = max(self.stats["peak_logits_bytes"], chunk * per_position)
        return chunk

    # ------------------------------------------------------------------ inference
    def encode_queries(self, texts: Sequence[str], **kwargs: Any) -> SparseBatch:
        return self.encode(texts, side="query", **kwargs).sparse

    def encode_documents(self, texts: Sequence[str], **kwargs: Any) -> SparseBatch:
        return self.encode(texts, side="document", **kwargs).sparse

    def encode(
        self,
        texts: Sequence[str],
        side: str = "document",
        *,
        batch_size: int = 32,
        top_k: int | None = None,
        threshold: float = 0.0,
        show_progress: bool = False,
    ) -> Encoding:
        """Encode texts in their given order; ``top_k`` / ``threshold`` prune each vector (keep > threshold).

        On the CPU this sets glibc's heap to keep freed memory for the next batch, process-wide (lsr.heap).
        """
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, not {side!r}")
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        if top_k is not None and top_k < 1:
            raise ValueError("top_k must be positive")
        if not np.isfinite(threshold) or threshold < 0:
            raise ValueError("threshold must be a finite number >= 0")
        if isinstance(texts, (str, bytes)):
            raise TypeError("texts must be a sequence of str, not a single string")
        n = len(texts)
        rows: list[tuple[np.ndarray, np.ndarray]] = [None] * n  # type: ignore[list-item]
        dense = np.zeros((n, self.dense_dim), dtype=np.float32) if self.dense_dim else None
        max_length = self.max_length_for(side)
        progress = progress_bar(n, show_progress, f"encode {side}s")
        t0 = time.perf_counter()
        was_training = self.training
        if was_training:  # train()/eval() walk every module: not on each small call
            self.eval()
        lock = threading.Lock()  # stats and progress, updated by the CPU workers

        def step(idx: np.ndarray, contents: list[list[int]]) -> None:
            batch = self.layout.batch(contents, max_length, self.device)
            w, d = self(batch, side)
            if top_k is not None:
                w = pooling.top_k(w, top_k)
            if threshold > 0:
                w = pooling.threshold(w, threshold)
            self._collect(w, idx, rows)
            if dense is not None:
                dense[idx] = d.float().cpu().numpy()
            with lock:
                self.stats["truncated"] += batch.truncated
                self.stats["tokens"] += batch.tokens
                self.stats["padded_tokens"] += batch.input_ids.numel()
                progress.update(len(idx))

        if self.device.type == "cpu":
            heap.retain_freed_memory()
        workers = self.cpu_workers() if n > batch_size else 1
        try:
            if workers > 1:
                _run_on_workers(step, self._blocks(texts, batch_size), workers)
            else:
                with torch.inference_mode(), attention_kernels(self.device, self.dtype):
                    for idx, contents in self._blocks(texts, batch_size):
                        step(idx, contents)
        finally:
            progress.close()
            if was_training:
                self.train()
        self.stats["texts"] += n
        self.stats["seconds"] = self.stats.get("seconds", 0.0) + time.perf_counter() - t0
        if self.device.type == "cuda":
            self.stats["peak_device_bytes"] = int(torch.cuda.max_memory_allocated(self.device))
        return Encoding(_to_csr(rows), dense)

    def cpu_workers(self) -> int:
        """Batches encoded at once on the CPU, each on one thread: on 2 cores this beat one batch at a time on
        2 intra-op threads (small GEMMs and elementwise passes scale poorly; bench_encode's ours[1 worker])."""
        if self.device.type != "cpu":
            return 1
        return max(1, self.workers or _configured_threads())

    def _blocks(self, texts: Sequence[str], batch_size: int) -> Iterator[tuple[np.ndarray, list[list[int]]]]:
        """(original indices, token ids) per batch; the next block is tokenized while this one runs."""
        block = max(batch_size * 32, 2048)

        def batches(ids: list[list[int]], start: int) -> Iterator[tuple[np.ndarray, list[list[int]]]]:
            order = np.argsort([-len(x) for x in ids], kind="stable")
            for b0 in range(0, len(order), batch_size):
                sel = order[b0 : b0 + batch_size]
                yield sel + start, [ids[i] for i in sel]

        if len(texts) <= block:  # one block: nothing to overlap, no thread to start
            yield from batches(self.layout.tokenize(texts), 0)
            return
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(self.layout.tokenize, texts[0:block])
            for s in range(0, len(texts), block):
                ids = pending.result()
                nxt = s + block
                pending = pool.submit(self.layout.tokenize, texts[nxt : nxt + block]) if nxt < len(texts) else None
                yield from batches(ids, s)

    @staticmethod
    def _collect(w: torch.Tensor, idx: np.ndarray, rows: list) -> None:
        nz = w.nonzero()  # on the device: only the non-zeros are copied back
        vals = w[nz[:, 0], nz[:, 1]].float().cpu().numpy()
        nz = nz.cpu().numpy()
        splits = np.searchsorted(nz[:, 0], np.arange(len(idx) + 1))
        for j, i in enumerate(idx):
            lo, hi = splits[j], splits[j + 1]
            rows[i] = (nz[lo:hi, 1].astype(np.uint32), vals[lo:hi].astype(np.float32))


@contextlib.contextmanager
def _cast_for_saving(module: nn.Module, dtype: str | None):  # noqa: ANN202
    """``module`` in ``dtype`` inside the block (to write a smaller file), then every parameter and buffer gets its
    exact original tensor back, so the model in memory is unchanged. None: nothing is cast."""
    if dtype is None or all(p.dtype == getattr(torch, dtype) for p in module.parameters()):
        yield
        return
    params = [(p, p.data) for p in module.parameters()]  # .to() swaps a parameter's data in place
    buffers = [(m, n, b) for m in module.modules() for n, b in m._buffers.items() if b is not None]
    try:
        module.to(getattr(torch, dtype))
        yield
    finally:
        for p, original in params:
            p.data = original
        for m, n, b in buffers:  # ... but replaces a buffer with a new tensor
            m._buffers[n] = b


_op_threads_lock = threading.Lock()
_op_threads_users = 0
_op_threads_saved = 1


@contextlib.contextmanager
def _one_op_thread():  # noqa: ANN202
    """torch's intra-op threads set to 1 while any caller is inside; the previous count restored after the last.
    torch's thread count is process-wide: other torch work in this process runs on one thread meanwhile."""
    global _op_threads_users, _op_threads_saved
    with _op_threads_lock:
        if _op_threads_users == 0:
            _op_threads_saved = torch.get_num_threads()
            torch.set_num_threads(1)
        _op_threads_users += 1
    try:
        yield
    finally:
        with _op_threads_lock:
            _op_threads_users -= 1
            if _op_threads_users == 0:
                torch.set_num_threads(_op_threads_saved)


def _configured_threads() -> int:
    """torch's intra-op thread count as configured: not the 1 it is set to while another encode runs on workers."""
    with _op_threads_lock:
        return _op_threads_saved if _op_threads_users else torch.get_num_threads()


def _run_on_workers(step, batches: Iterator[tuple[np.ndarray, list[list[int]]]], workers: int) -> None:  # noqa: ANN001
    """step(idx, contents) for every batch on ``workers`` threads, each running torch on one thread
    (inference mode is per thread); at most 2 batches per worker wait; the first error stops the rest."""

    def run(idx: np.ndarray, contents: list[list[int]]) -> None:
        with torch.inference_mode():
            step(idx, contents)

    with _one_op_thread(), ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lsr-encode") as pool:
        pending: set = set()
        try:
            for idx, contents in batches:
                if len(pending) >= 2 * workers:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in done:
                        f.result()
                pending.add(pool.submit(run, idx, contents))
            for f in pending:
                f.result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def attention_kernels(device: torch.device, dtype: torch.dtype):  # noqa: ANN202
    """Attention backends for inference and training: on CUDA in half precision, without cuDNN's, which plans anew
    for every (batch, length) shape (9 ms of CPU per call measured on an H100 at inference, 110 ms per training
    forward of SPLADE-tiny), and every batch has its own."""
    if device.type != "cuda" or dtype not in (torch.float16, torch.bfloat16):
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


def _to_csr(rows: list[tuple[np.ndarray, np.ndarray]]) -> SparseBatch:
    indptr = np.zeros(len(rows) + 1, dtype=np.uint64)
    if not rows:
        return SparseBatch(indptr, np.zeros(0, np.uint32), np.zeros(0, np.float32))
    indptr[1:] = np.cumsum([len(r[0]) for r in rows])
    return SparseBatch(indptr, np.concatenate([r[0] for r in rows]), np.concatenate([r[1] for r in rows]))
