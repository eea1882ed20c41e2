"""One experiment = one small TOML file; every setting has its default here, unknown keys are refused.

[model]     base encoder (alias or folder), encoder settings for a fresh one, LoRA, checkpointing
[data]      the training set (Parquet from ``lsr trainset``), group size, batch size
[loss]      weights of the composable losses and the teacher ensemble
[sparsity]  FLOPS or L1 on queries and documents, quadratic warm-up, document threshold
[optim]     AdamW, schedule, accumulation, steps
[run]       output folder, seed, device, precision, logging and checkpoint cadence
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

LOSSES = ("infonce", "kl", "margin_mse", "disco")
TEACHERS = ("bm25", "splade", "dense", "model", "label")


@dataclass
class ModelSection:
    base: str = "splade-tiny"  # alias, saved encoder folder, .gguf file
    settings: dict[str, Any] = field(default_factory=dict)  # SparseEncoderConfig fields for a fresh encoder
    lora: bool = False  # train LoRA adapters (peft) on a frozen backbone instead of every weight
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_targets: list[str] | None = None
    train_head: bool = True  # with LoRA: also train the literal-residual / extra heads
    # "zero": a fresh literal residual changes nothing; "idf": it starts as binary-tf IDF over the text's own tokens
    # (IDF of the training set's documents, lsr.train.lookup.idf; TiedResidual.start_from_idf)
    residual_init: str = "zero"
    residual_idf_scale: float = 3.0  # the largest lift, in units of the saturated SPLADE weights log(1 + relu(x))
    # the starting value of every entry of the LM-head bias (model.settings.head_bias); 0 changes nothing
    head_bias_start: float = 0.0
    gradient_checkpointing: bool = False
    # "model": train the encoder itself; "lookup": keep ``base`` frozen as the document encoder and train
    # inference-free queries (a weight per token, lsr.train.lookup); "lookup-joint": train the document encoder
    # and the inference-free queries together (OpenSearch's doc-only recipe: the encoder never sees a query)
    queries: str = "model"
    lookup_lr: float = 5e-3  # "lookup-joint": the learning rate of the per-token query weights (IDF start)
    # keep ``base`` (a trained sparse encoder) frozen and train only a dense head added to it: the
    # ``settings.dense_pooling`` of block ``settings.dense_layer`` through a projection (lsr.train.dense_head)
    dense_head_only: bool = False


QUERY_SIDES = ("model", "lookup", "lookup-joint")


@dataclass
class DataSection:
    train: str = ""  # a training-set folder written by ``lsr trainset`` (train.parquet, docs.parquet, manifest.json)
    sources: list[str] | None = None  # which query sources to use ("train", "pseudo"); None: all
    group_size: int = 8  # documents per query: one positive + (group_size - 1) hard negatives
    negatives_depth: int = 50  # negatives are drawn from this many top candidates
    batch_size: int = 16  # queries per optimiser step (before accumulation)


@dataclass
class LossSection:
    infonce: float = 1.0
    infonce_temperature: float = 1.0
    kl: float = 0.0
    kl_temperature: float = 1.0  # on the student's scores
    teacher_temperature: float = 0.1  # on the ensemble target (normalised to [0, sum of weights])
    margin_mse: float = 0.0
    disco: float = 0.0
    disco_teacher: str = ""  # an encoder (alias or folder) over the same vocabulary: its query vectors
    teachers: dict[str, float] = field(default_factory=lambda: {"bm25": 1.0, "splade": 1.0, "dense": 1.0})
    teacher_norm: str = "minmax"
    dense: float = 1.0  # weight of the same losses on the dense head's scores (a hybrid from one forward pass)
    dense_temperature: float = 0.05  # cosine scores live in [-1, 1]


@dataclass
class SparsitySection:
    kind: str = "flops"  # "flops" or "l1"
    query: float = 1e-3
    document: float = 1e-3
    warmup_steps: int = 0  # quadratic warm-up of both weights
    document_target_nnz: int | None = None  # stop regularising documents at or below this many non-zeros


@dataclass
class OptimSection:
    lr: float = 2e-5
    weight_decay: float = 0.01
    warmup_steps: int = 0
    schedule: str = "linear"  # "linear" decay to 0 or "constant" after warm-up
    epochs: int = 1
    max_steps: int | None = None  # stop after this many optimiser steps (overrides epochs)
    grad_accum: int = 1
    max_grad_norm: float = 1.0


@dataclass
class RunSection:
    out: str = "runs/train"
    seed: int = 42
    device: str = "cpu"
    bf16: bool = True  # autocast in bfloat16 on CUDA (ignored on the CPU)
    log_every: int = 10
    save_every: int = 0  # 0: only at the end
    save_dtype: str = "float32"  # the final model's weights: float32, float16 or bfloat16


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    loss: LossSection = field(default_factory=LossSection)
    sparsity: SparsitySection = field(default_factory=SparsitySection)
    optim: OptimSection = field(default_factory=OptimSection)
    run: RunSection = field(default_factory=RunSection)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        d, lo, sp, op, r = self.data, self.loss, self.sparsity, self.optim, self.run
        if not d.train:
            raise ValueError("[data] train: the training-set folder (from `lsr trainset`) is required")
        if self.model.residual_init not in ("zero", "idf"):
            raise ValueError(f"[model] residual_init must be 'zero' or 'idf', not {self.model.residual_init!r}")
        if self.model.residual_idf_scale <= 0:
            raise ValueError("[model] residual_idf_scale must be positive")
        if self.model.queries not in QUERY_SIDES:
            raise ValueError(f"[model] queries must be one of {QUERY_SIDES}, not {self.model.queries!r}")
        if self.model.queries == "lookup-joint":
            if self.model.lookup_lr <= 0:
                raise ValueError("[model] lookup_lr must be positive")
            if self.model.settings.get("dense_pooling") not in (None, "none") and lo.dense:
                raise ValueError(
                    "[model] queries = 'lookup-joint' trains sparse queries only: set [loss] dense = 0 or "
                    "model.settings.dense_pooling = 'none'"
                )
        if self.model.dense_head_only:
            extra = set(self.model.settings) - {"dense_pooling", "dense_layer", "max_length", "query_max_length"}
            if self.model.settings.get("dense_pooling") not in ("mean", "last") or extra:
                raise ValueError(
                    "[model] dense_head_only adds a dense head to a trained encoder: settings takes dense_pooling "
                    f"('mean' or 'last'), dense_layer and the lengths only (got {sorted(self.model.settings)})"
                )
            if self.model.queries != "model" or self.model.lora or not lo.dense:
                raise ValueError("[model] dense_head_only trains the dense head alone: queries = 'model', "
                                 "lora = false and [loss] dense > 0")  # fmt: skip
        if d.group_size < 1 or d.batch_size < 1 or d.negatives_depth < 1:
            raise ValueError("[data] group_size, batch_size and negatives_depth must be positive")
        for name in ("infonce", "kl", "margin_mse", "disco", "dense"):
            if getattr(lo, name) < 0:
                raise ValueError(f"[loss] {name} must be >= 0")
        if lo.infonce + lo.kl + lo.margin_mse + lo.disco == 0:
            raise ValueError(f"[loss] every loss weight is 0; set one of {LOSSES}")
        if (lo.kl or lo.margin_mse) and d.group_size < 2:
            raise ValueError("[loss] kl and margin_mse need group_size >= 2 (a positive and negatives)")
        unknown = set(lo.teachers) - set(TEACHERS)
        if unknown:
            raise ValueError(f"[loss] teachers: unknown teacher {sorted(unknown)}; known: {list(TEACHERS)}")
        if lo.disco and not lo.disco_teacher:
            raise ValueError("[loss] disco needs disco_teacher (an encoder over the same vocabulary)")
        if lo.teacher_norm not in ("minmax", "zscore"):
            raise ValueError(f"[loss] teacher_norm must be 'minmax' or 'zscore', not {lo.teacher_norm!r}")
        if min(lo.infonce_temperature, lo.kl_temperature, lo.teacher_temperature, lo.dense_temperature) <= 0:
            raise ValueError("[loss] temperatures must be positive")
        if sp.kind not in ("flops", "l1"):
            raise ValueError(f"[sparsity] kind must be 'flops' or 'l1', not {sp.kind!r}")
        if sp.query < 0 or sp.document < 0:
            raise ValueError("[sparsity] weights must be >= 0")
        if op.schedule not in ("linear", "constant"):
            raise ValueError(f"[optim] schedule must be 'linear' or 'constant', not {op.schedule!r}")
        if op.lr <= 0 or op.grad_accum < 1 or op.epochs < 1:
            raise ValueError("[optim] lr, grad_accum and epochs must be positive")
        if op.max_steps is not None and op.max_steps < 1:
            raise ValueError("[optim] max_steps must be positive")
        if r.save_dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(f"[run] save_dtype must be float32, float16 or bfloat16, not {r.save_dtype!r}")
        if r.log_every < 1 or r.save_every < 0:
            raise ValueError("[run] log_every must be positive and save_every >= 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> TrainConfig:
        sections = {f.name: f.type for f in fields(cls)}
        unknown = set(raw) - set(sections)
        if unknown:
            raise ValueError(f"{source}: unknown section(s) {sorted(unknown)}; known: {sorted(sections)}")
        kwargs = {}
        for f in fields(cls):
            section_cls = f.default_factory().__class__  # type: ignore[misc]
            values = raw.get(f.name, {})
            if not isinstance(values, dict):
                raise ValueError(f"{source}: [{f.name}] must be a table of settings")
            known = {x.name for x in fields(section_cls)}
            bad = set(values) - known
            if bad:
                raise ValueError(f"{source}: unknown key(s) {sorted(bad)} in [{f.name}]; known: {sorted(known)}")
            kwargs[f.name] = section_cls(**values)
        return cls(**kwargs)

    @classmethod
    def load(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such config file")
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: not valid TOML: {e}") from None
        for dotted, value in (overrides or {}).items():
            *tables, key = dotted.split(".")
            if not tables or not key:
                raise ValueError(f"override {dotted!r} must be SECTION.KEY=VALUE (or SECTION.TABLE.KEY=VALUE)")
            node = raw
            for i, name in enumerate(tables):
                if not isinstance(node.setdefault(name, {}), dict):
                    where = "[" + ".".join(tables[: i + 1]) + "]"
                    raise ValueError(f"{path}: {where} must be a table of settings")
                node = node[name]
            node[key] = value
        return cls.from_dict(raw, str(path))


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``SECTION.KEY=VALUE`` strings -> {"SECTION.KEY": value}. VALUE is TOML (a bare word is a string, and the bare
    word ``none`` unsets a setting, as TOML has no null); ``SECTION.TABLE.KEY`` reaches into an inline table, e.g.
    ``model.settings.echo=false``."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise ValueError(f"override {item!r}: expected SECTION.KEY=VALUE")
        if value.strip() == "none":
            out[key.strip()] = None
            continue
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value
    return out
