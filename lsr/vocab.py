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
