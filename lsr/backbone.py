"""A Hugging Face language model seen as (body: ids -> hidden states, head: hidden -> vocabulary logits).

Two families:
- ``mlm``: encoders with a masked-language-model head (BERT, DistilBERT, RoBERTa); the head is
  the MLM prediction head (transform + decoder tied to the input embeddings).
- ``causal``: decoder-only LLMs (Llama, Mistral, Qwen, SmolLM2, ...); the head is ``lm_head``.
  Positions are computed from the attention mask, so left and right padding give the same
  vectors; ``bidirectional=True`` replaces the causal mask by a padding-only mask (the
  LLM2Vec / Mistral-SPLADE variant, normally used after fine-tuning with it).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)

KINDS = ("mlm", "causal")


def detect_kind(config: Any) -> str:
    archs = " ".join(getattr(config, "architectures", None) or [])
    if "MaskedLM" in archs:
        return "mlm"
    if "CausalLM" in archs or "LMHeadModel" in archs:
        return "causal"
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    return "mlm" if config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES else "causal"


def model_class(kind: str):  # noqa: ANN201
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    return {"mlm": AutoModelForMaskedLM, "causal": AutoModelForCausalLM}[kind]


class Backbone(nn.Module):
    """Wraps a ``*ForMaskedLM`` / ``*ForCausalLM`` model; owns no weights of its own but, with ``head_bias``, a
    (V,) bias added to a decoder's LM-head logits (a decoder's head has none; an MLM head has its own)."""

    def __init__(self, lm: nn.Module, kind: str, bidirectional: bool = False, head_bias: bool = False) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"backbone kind must be one of {KINDS}, not {kind!r}")
        if bidirectional and kind != "causal":
            raise ValueError("bidirectional attention is an option of causal (decoder-only) backbones")
        self.lm = lm
        self.kind = kind
        self.bidirectional = bidirectional
        self.vocab_size = int(lm.get_output_embeddings().weight.shape[0])
        self.hidden_size = int(lm.config.hidden_size)
        self._transform = _mlm_transform(lm) if kind == "mlm" else None
        if head_bias and (kind != "causal" or lm.get_output_embeddings().bias is not None):
            raise ValueError("head_bias is an option of decoder (causal) backbones, whose LM head has no bias")
        self.head_bias = nn.Parameter(torch.zeros(self.vocab_size)) if head_bias else None

    @property
    def config(self) -> Any:
        return self.lm.config

    @property
    def num_layers(self) -> int:
        return int(self.lm.config.num_hidden_layers)

    def body(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Last hidden states (B, T, H); for causal models after the final norm."""
        return self.body_and_layer(input_ids, attention_mask, 0)[0]

    def body_and_layer(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, layer: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The last hidden states and those of block ``layer`` (1-based; 0: the last ones again), from one pass."""
        if not 0 <= layer < self.num_layers:
            raise ValueError(f"layer must be in [0, {self.num_layers}) (0: the last hidden states), not {layer}")
        inner = self.lm.base_model if self.kind == "mlm" else self.lm.get_decoder()
        captured: list[torch.Tensor] = []
        hook = None
        if layer:  # block ``layer``'s output alone (output_hidden_states would keep every block's to the end)
            blocks = inner.encoder.layer if self.kind == "mlm" else inner.layers
            me = threading.get_ident()  # CPU workers run the same modules at once: take this thread's pass only

            def grab(_module: nn.Module, _args: Any, out: Any) -> None:
                if threading.get_ident() == me:
                    captured.append(out[0] if isinstance(out, tuple) else out)

            hook = blocks[layer - 1].register_forward_hook(grab)
        try:
            if self.kind == "mlm":
                out = inner(input_ids=input_ids, attention_mask=attention_mask)
            else:
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
                mask: torch.Tensor = attention_mask
                if self.bidirectional:
                    dtype = self.lm.get_output_embeddings().weight.dtype
                    allowed = attention_mask.bool()[:, None, None, :].expand(-1, 1, attention_mask.shape[1], -1)
                    mask = torch.zeros(allowed.shape, dtype=dtype, device=input_ids.device).masked_fill(
                        ~allowed, torch.finfo(dtype).min
                    )
                out = inner(input_ids=input_ids, attention_mask=mask, position_ids=position_ids, use_cache=False)
        finally:
            if hook is not None:
                hook.remove()  # before any backward: a checkpointed block's recomputation adds nothing
        last = out.last_hidden_state
        return last, (captured[0] if layer else last)

    def pre_head(self, hidden: torch.Tensor) -> torch.Tensor:
        """What the vocabulary projection sees: the MLM transform's output, or the hidden state itself."""
        return self._transform(hidden) if self._transform is not None else hidden

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.lm.get_output_embeddings()(self.pre_head(hidden))
        return logits if self.head_bias is None else logits + self.head_bias.to(logits.dtype)

    def projection(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The vocabulary projection's (V, H') weight and bias (None when it has none)."""
        out = self.lm.get_output_embeddings()
        return out.weight, out.bias if self.head_bias is None else self.head_bias


def _mlm_transform(lm: nn.Module):  # noqa: ANN202
    """The part of an MLM head between the encoder output and the vocabulary projection."""
    if hasattr(lm, "cls") and hasattr(lm.cls, "predictions"):  # BERT
        return lm.cls.predictions.transform
    if hasattr(lm, "lm_head") and hasattr(lm.lm_head, "dense"):  # RoBERTa, XLM-R
        h = lm.lm_head
        return lambda x: h.layer_norm(nn.functional.gelu(h.dense(x)))
    if hasattr(lm, "vocab_transform"):  # DistilBERT
        act = lm.activation
        return lambda x: lm.vocab_layer_norm(act(lm.vocab_transform(x)))
    raise ValueError(f"unsupported MLM head on {type(lm).__name__} (BERT, RoBERTa and DistilBERT heads are known)")


def add_lora(backbone: Backbone, r: int, alpha: int, dropout: float, target_modules: list[str] | None) -> dict:
    """Inject LoRA adapters (peft) into the backbone in place; returns the settings to record."""
    from peft import LoraConfig, inject_adapter_in_model

    targets = target_modules or _default_targets(backbone)
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets)
    inject_adapter_in_model(cfg, backbone.lm)
    return {"r": r, "alpha": alpha, "dropout": dropout, "target_modules": targets}


def _default_targets(backbone: Backbone) -> list[str]:
    names = {n.rsplit(".", 1)[-1] for n, m in backbone.lm.named_modules() if isinstance(m, nn.Linear)}
    for cand in (["q_proj", "k_proj", "v_proj", "o_proj"], ["query", "key", "value"], ["q_lin", "k_lin", "v_lin"]):
        if set(cand) <= names:
            return cand
    raise ValueError(f"cannot guess LoRA target modules among {sorted(names)}; pass target_modules")
