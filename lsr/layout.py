"""Texts -> padded token batches, with the positions each text is pooled over.

The tokenizer runs once per text without special tokens or truncation (so truncation is
counted, never silent); rows are then assembled here: prefix specials + content (+ content
again in echo mode) + suffix specials, cut to ``max_length``, padded left or right.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch

from .pooling import last_index
from .transfer import to_device


class Batch(NamedTuple):
    input_ids: torch.Tensor  # (B, T) int64
    attention_mask: torch.Tensor  # (B, T) int64
    keep: torch.Tensor  # (B, T) bool: positions pooled over (content; the second copy in echo mode)
    last: torch.Tensor  # (B,) index of each row's last attended position
    truncated: int  # texts cut to fit max_length
    tokens: int  # attended positions (no padding)
    kept: torch.Tensor | None = None  # (N,) flat positions (row * T + column) where keep is True, row after row
    kept_lengths: torch.Tensor | None = None  # (B,) keep's True positions per row, on the CPU: read without a wait

    def kept_rows(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The kept positions' rows of ``hidden`` (B, T, H), packed row after row (``hidden[keep]``), and how many
        each text has. With ``kept`` (built on the host) neither waits for the device: a boolean mask's size is
        only known once the device has computed it."""
        if self.kept is None or self.kept_lengths is None:
            return hidden[self.keep], self.keep.sum(dim=1)
        return hidden.flatten(0, 1).index_select(0, self.kept), self.kept_lengths


class Layout:
    def __init__(
        self, tokenizer: Any, *, echo: bool = False, padding_side: str | None = None, pool_special: bool = False
    ) -> None:
        if echo and pool_special:
            raise ValueError("echo mode pools over the second copy only; it cannot pool over special tokens")
        self.tokenizer = tokenizer
        self.echo = echo
        self.pool_special = pool_special
        self.padding_side = padding_side or getattr(tokenizer, "padding_side", "right") or "right"
        if self.padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', not {self.padding_side!r}")
        self.prefix, self.suffix = _special_frame(tokenizer)
        self.special = frozenset(tokenizer.all_special_ids)
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        self.pad_id = int(pad)

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        clean = [_clean(t, i) for i, t in enumerate(texts)]
        if not clean:
            return []
        backend = _rust_backend(self.tokenizer)
        if backend is not None:  # the same ids, without the character offsets nobody reads here
            return [e.ids for e in backend.encode_batch_fast(clean, add_special_tokens=False)]
        return self.tokenizer(clean, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]

    def budget(self, max_length: int) -> int:
        """Content tokens that fit one copy of a text."""
        room = max_length - len(self.prefix) - len(self.suffix)
        return room // 2 if self.echo else room

    def batch(self, contents: Sequence[Sequence[int]], max_length: int, device: str | torch.device = "cpu") -> Batch:
        budget = self.budget(max_length)
        if budget < 1:
            raise ValueError(f"max_length {max_length} leaves no room for text after the special tokens")
        rows, spans, truncated = [], [], 0
        first = len(self.prefix)
        for c in contents:
            truncated += len(c) > budget
            c = list(c[:budget])
            if self.echo:
                row = self.prefix + c + c + self.suffix
                span = (first + len(c), first + 2 * len(c))
            else:
                row = self.prefix + c + self.suffix
                # SPLADE's reference code / sentence-transformers pool over every attended token
                span = (0, len(row)) if self.pool_special else (first, first + len(c))
            rows.append(row)
            spans.append((span, [] if self.pool_special else [i for i in range(*span) if row[i] in self.special]))
        T = max(1, max((len(r) for r in rows), default=1))
        B = len(rows)
        ids = torch.full((B, T), self.pad_id, dtype=torch.long)
        att = torch.zeros((B, T), dtype=torch.long)
        keep = torch.zeros((B, T), dtype=torch.bool)
        for b, (row, ((lo, hi), specials)) in enumerate(zip(rows, spans)):
            off = T - len(row) if self.padding_side == "left" else 0
            if row:
                ids[b, off : off + len(row)] = torch.tensor(row, dtype=torch.long)
                att[b, off : off + len(row)] = 1
            else:  # an empty text on a backbone without special tokens: one attended pad, pooled over nothing
                att[b, off if self.padding_side == "right" else T - 1] = 1
            keep[b, off + lo : off + hi] = True
            for i in specials:  # special tokens typed inside the text are not terms
                keep[b, off + i] = False
        last = last_index(att.bool())
        kept = keep.flatten().nonzero().squeeze(1)
        return Batch(to_device(ids, device), to_device(att, device), to_device(keep, device), to_device(last, device),
                     truncated, int(att.sum()), to_device(kept, device), keep.sum(dim=1))  # fmt: skip


def _rust_backend(tokenizer: Any) -> Any:
    """A fast tokenizer's Rust tokenizer where calling it directly gives what the Hugging Face call gives
    (no truncation or padding configured on it), else None."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not hasattr(backend, "encode_batch_fast"):
        return None
    if backend.truncation is not None or backend.padding is not None:
        return None
    return backend


def _special_frame(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after a single text."""
    probe = "hello"
    with_sp = tokenizer(probe, add_special_tokens=True)["input_ids"]
    bare = tokenizer(probe, add_special_tokens=False)["input_ids"]
    for i in range(len(with_sp) - len(bare) + 1):
        if with_sp[i : i + len(bare)] == bare:
            return list(with_sp[:i]), list(with_sp[i + len(bare) :])
    raise ValueError(f"cannot locate the text among the special tokens of {type(tokenizer).__name__}")


def _clean(text: object, i: int) -> str:
    if not isinstance(text, str):
        raise TypeError(
            f"text {i} is {type(text).__name__}, expected str"
            + ("; decode bytes first, e.g. b.decode('utf-8', errors='replace')" if isinstance(text, bytes) else "")
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates (e.g. from surrogateescape decoding) become U+FFFD
        text = "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in text)
    return text
