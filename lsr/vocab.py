"""A fingerprint of a vocabulary: an index built with one refuses queries encoded with another."""

from __future__ import annotations

import hashlib
from typing import Any


def vocab_hash(tokenizer: Any, vocab_size: int) -> str:
    """sha256 over the head's vocabulary size and every (id, token) pair of the tokenizer, in id order."""
    h = hashlib.sha256(f"vocab_size={vocab_size}\n".encode())
    for token, i in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1]):
        h.update(f"{i}\t{token}\n".encode("utf-8", "surrogatepass"))
    return "sha256:" + h.hexdigest()


def tokens(model: str, vocab_size: int, expected_hash: str | None = None) -> list[str]:
    """The token string of every vocabulary id of ``model`` (its tokenizer only: no weights are loaded), for
    exports that name terms by token. Ids past the tokenizer's vocabulary (rows an LM head pads with) become
    ``<id:N>``. With ``expected_hash`` (an index's recorded ``vocab_hash``), a tokenizer of another vocabulary is
    refused."""
    from transformers import AutoTokenizer

    from .models import resolve

    src = resolve(model)
    tokenizer = AutoTokenizer.from_pretrained(src.path, **src.hf_kwargs())
    if expected_hash is not None and vocab_hash(tokenizer, vocab_size) != expected_hash:
        raise ValueError(
            f"{model}'s tokenizer is not the vocabulary the index was built over ({expected_hash[:19]}...)"
        )
    out = [f"<id:{i}>" for i in range(vocab_size)]
    for token, i in tokenizer.get_vocab().items():
        if i < vocab_size:
            out[i] = token
    return out
