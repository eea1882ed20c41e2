"""SPLADE-tiny through lsr.splade against a straightforward reference implementation."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from lsr.models import resolve_model_dir  # noqa: E402

try:
    MODEL_DIR = resolve_model_dir("splade-tiny")
except FileNotFoundError as e:  # pragma: no cover - depends on the optional package
    pytest.skip(str(e), allow_module_level=True)

TEXTS = [
    "Aspirin reduces the risk of myocardial infarction in elderly patients.",
    "",
    "short",
    "A much longer passage " * 60,  # truncated at max_length
    "naïve café — non-ASCII text, with punctuation!",
]


def naive_splade(texts: list[str], max_length: int) -> list[dict[int, float]]:
    """Full logits, log(1 + ReLU), padding and special tokens masked, max over tokens."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(MODEL_DIR)
    model = AutoModelForMaskedLM.from_pretrained(MODEL_DIR).eval()
    out = []
    with torch.no_grad():
        for t in texts:
            enc = tok([t], truncation=True, max_length=max_length, return_tensors="pt")
            logits = model(**enc).logits[0]  # T x V
            keep = torch.tensor([i not in tok.all_special_ids for i in enc["input_ids"][0].tolist()])
            w = torch.log1p(torch.relu(logits))[keep]
            vec = w.max(dim=0).values if len(w) else torch.zeros(logits.shape[1])
            nz = vec.nonzero().ravel()
            out.append({int(i): float(vec[i]) for i in nz})
    return out


def test_matches_naive_reference() -> None:
    from lsr.splade import SpladeEncoder

    enc = SpladeEncoder(MODEL_DIR, max_length=64, token_chunk=7)
    batch = enc.encode_documents(TEXTS, batch_size=2)
    assert batch.indices.dtype == np.uint32 and batch.values.dtype == np.float32
    assert enc.truncated == 1
    for i, want in enumerate(naive_splade(TEXTS, 64)):
        terms, weights = batch.row(i)
        got = dict(zip(terms.tolist(), weights.tolist()))
        assert got.keys() == want.keys(), i
        np.testing.assert_allclose(
            [got[t] for t in want], list(want.values()), rtol=1e-4, atol=1e-5
        )  # batching with padding changes fp32 sums slightly
    assert batch.row(1)[0].size == 0  # the empty text has no terms


def test_missing_alias_says_what_to_install() -> None:
    from lsr import models

    with pytest.raises(FileNotFoundError, match="neither a packaged alias"):
        models.resolve_model_dir("no-such-model")
