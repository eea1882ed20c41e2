"""Pseudo-queries: an instruct LLM writes search queries for passages from a few-shot prompt.

InPars (Bonifacio et al. 2022, arXiv:2202.05144) and Promptagator (Dai et al. 2022, arXiv:2209.11755): a
handful of (passage, query) examples, then the target passage; several samples per passage, cut at the first
line break, normalised and deduplicated. The round-trip filter that keeps only queries whose passage a
teacher ranks near the top lives with the training-set builder (retrieval.trainset).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch

logger = logging.getLogger(__name__)


@dataclass
class GenerationSettings:
    model: str = "smollm2-135m"
    per_passage: int = 4  # samples drawn per passage (before deduplication)
    max_new_tokens: int = 40
    temperature: float = 0.8
    top_p: float = 0.95
    max_passage_chars: int = 700  # the target and every example passage are cut to this many characters
    batch_size: int = 64  # passages per generate call
    seed: int = 0


def prompt(examples: Sequence[tuple[str, str]], passage: str, max_chars: int) -> str:
    """The InPars-style few-shot prompt: examples as Passage/Query pairs, then the target passage."""
    parts = [f"Passage: {_cut(p, max_chars)}\nQuery: {q.strip()}\n" for p, q in examples]
    parts.append(f"Passage: {_cut(passage, max_chars)}\nQuery:")
    return "\n".join(parts)


def _cut(text: str, max_chars: int) -> str:
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    return cut[: cut.rfind(" ")] if " " in cut else cut


def clean(generated: str) -> str | None:
    """The first line of a sample, whitespace-normalised; None when it is no usable query."""
    line = generated.strip().split("\n", 1)[0].strip().strip('"').strip()
    line = re.sub(r"^(query|question)\s*:\s*", "", line, flags=re.IGNORECASE)
    line = " ".join(line.split())
    words = line.split()
    if len(words) < 3 or len(words) > 40 or line.lower().startswith("passage"):
        return None
    return line


def dedupe(queries: Sequence[str]) -> list[str]:
    seen, out = set(), []
    for q in queries:
        key = re.sub(r"[^\w]+", " ", q.lower()).strip()
        if key and key not in seen:
            seen.add(key)
            out.append(q)
    return out


class QueryGenerator:
    def __init__(self, settings: GenerationSettings, device: str = "cpu", dtype: str = "float32") -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from ..models import resolve

        self.settings = settings
        src = resolve(settings.model)
        self.tokenizer = AutoTokenizer.from_pretrained(src.path, **src.hf_kwargs())
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(src.path, dtype=getattr(torch, dtype), **src.hf_kwargs())
        self.model.to(device).eval()
        self.device = device

    @torch.inference_mode()
    def generate(
        self, passages: Sequence[str], examples: Sequence[tuple[str, str]], show_progress: bool = False
    ) -> list[list[str]]:
        """For each passage, its deduplicated queries (possibly none)."""
        from ..progress import progress

        s = self.settings
        out: list[list[str]] = []
        bar = progress(len(passages), show_progress, "pseudo-queries", unit="passage")
        for b0 in range(0, len(passages), s.batch_size):
            chunk = passages[b0 : b0 + s.batch_size]
            texts = [prompt(examples, p, s.max_passage_chars) for p in chunk]
            enc = self.tokenizer(texts, return_tensors="pt", padding=True).to(self.device)
            torch.manual_seed(s.seed + b0)
            gen = self.model.generate(
                **enc,
                do_sample=True,
                temperature=s.temperature,
                top_p=s.top_p,
                max_new_tokens=s.max_new_tokens,
                num_return_sequences=s.per_passage,
                pad_token_id=self.tokenizer.pad_token_id,
            )
            new = self.tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
            for i in range(len(chunk)):
                samples = [clean(t) for t in new[i * s.per_passage : (i + 1) * s.per_passage]]
                out.append(dedupe([q for q in samples if q]))
            bar.update(len(chunk))
        bar.close()
        return out
