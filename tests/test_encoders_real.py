"""The packaged real weights (SPLADE-tiny, MiniLM, SmolLM2) against straightforward reference implementations."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from lsr.models import resolve  # noqa: E402


def packaged(name: str):  # noqa: ANN201
    try:
        return resolve(name)
    except FileNotFoundError as e:  # depends on the optional packages (installed by the README's commands)
        pytest.skip(str(e))


TEXTS = [
    "Aspirin reduces the risk of myocardial infarction in elderly patients.",
    "",
    "short",
    "A much longer passage " * 60,  # truncated at max_length
    "naïve café — non-ASCII text, with punctuation!",
]


def naive_splade(texts: list[str], max_length: int) -> list[dict[int, float]]:
    MODEL_DIR = packaged("splade-tiny").path
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


@pytest.mark.parametrize("fast", [True, False])
def test_matches_naive_reference(fast: bool) -> None:
    from lsr import SparseEncoder, fast_head

    packaged("splade-tiny")
    if fast and not fast_head.available():
        pytest.skip("the native head needs AVX-512 VNNI")
    enc = SparseEncoder.from_pretrained("splade-tiny", max_length=64)
    enc.token_chunk = 7
    enc.use_fast_head = fast
    batch = enc.encode_documents(TEXTS, batch_size=2)
    assert batch.indices.dtype == np.uint32 and batch.values.dtype == np.float32
    assert enc.stats["truncated"] == 1
    for i, want in enumerate(naive_splade(TEXTS, 64)):
        terms, weights = batch.row(i)
        got = dict(zip(terms.tolist(), weights.tolist()))
        assert got.keys() == want.keys(), i
        np.testing.assert_allclose(
            [got[t] for t in want], list(want.values()), rtol=1e-4, atol=1e-5
        )  # batching with padding changes fp32 sums slightly
    assert batch.row(1)[0].size == 0  # the empty text has no terms


def test_minilm_dense_matches_mean_pooling() -> None:
    from transformers import AutoModel, AutoTokenizer

    from lsr import DenseEncoder

    path = packaged("minilm-l6").path
    pytest.importorskip("sentence_transformers")
    enc = DenseEncoder.from_pretrained("minilm-l6")
    got = enc.encode_documents(TEXTS, batch_size=2)
    assert got.shape == (len(TEXTS), 384) and got.dtype == np.float32
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    with torch.no_grad():
        for i, t in enumerate(TEXTS):
            x = tok([t], truncation=True, max_length=enc.max_length, return_tensors="pt")
            h = model(**x).last_hidden_state[0]
            v = h.mean(dim=0)  # one text, no padding: mean over all its tokens, [CLS]/[SEP] included
            np.testing.assert_allclose(got[i], (v / v.norm()).numpy(), atol=2e-5)


@pytest.fixture(scope="module")
def smollm2():  # noqa: ANN201
    from lsr import SparseEncoder

    packaged("smollm2-135m")
    return SparseEncoder.from_pretrained("smollm2-135m", echo=True, max_length=48)


def test_smollm2_echo_matches_naive(smollm2) -> None:  # noqa: ANN001
    """Mistral-SPLADE-style echo pooling on the real SmolLM2-135M (GGUF) vs full logits of one text."""
    enc = smollm2
    texts = ["Aspirin reduces the risk of myocardial infarction.", "short", ""]
    got = enc.encode_documents(texts, batch_size=3)
    tok, lm = enc.tokenizer, enc.backbone.lm
    with torch.no_grad():
        for i, t in enumerate(texts):
            terms, weights = got.row(i)
            c = tok(t, add_special_tokens=False)["input_ids"][: (48 - len(enc.layout.prefix)) // 2]
            if not c:
                assert terms.size == 0
                continue
            ids = torch.tensor([enc.layout.prefix + c + c])
            logits = lm(input_ids=ids).logits[0, -len(c) :]
            vec = torch.log1p(torch.relu(logits)).max(dim=0).values
            want = {int(v): float(vec[v]) for v in vec.nonzero().ravel()}
            assert set(terms.tolist()) == set(want)
            np.testing.assert_allclose(weights, [want[t] for t in terms.tolist()], rtol=1e-4, atol=1e-4)
    assert enc.vocab_size == 49152


@pytest.mark.parametrize("name", ["splade-tiny", "smollm2-135m"])
def test_layout_tokenize_equals_the_hugging_face_call(name: str) -> None:
    """Layout.tokenize calls the Rust tokenizer directly (encode_batch_fast); the ids are the Hugging Face
    call's, on scifact passages, odd Unicode, special-token text and whitespace."""
    from transformers import AutoTokenizer

    from lsr.layout import Layout, _rust_backend

    src = packaged(name)
    tok = AutoTokenizer.from_pretrained(src.path, **src.hf_kwargs())
    layout = Layout(tok)
    assert _rust_backend(tok) is not None  # the fast path is the one under test
    texts = [
        *TEXTS,
        "  leading and trailing  ",
        "tab\tnew\nline",
        "[CLS] <s> </s> [SEP]",
        "\u00e9\u0301 \u4e2d\u6587 \U0001f600",
    ]
    corpus = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact" / "corpus.jsonl.gz"
    if corpus.is_file():
        with gzip.open(corpus, "rt", encoding="utf-8") as f:
            texts += [json.loads(line)["text"] for line, _ in zip(f, range(300))]
    want = tok(texts, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
    assert layout.tokenize(texts) == want


def test_smollm2_plain_equals_sentence_transformers() -> None:
    """Our causal default (no echo) against sentence-transformers' SparseEncoder on the same GGUF weights, the
    twin bench_encode times us against: its Transformer keeping every position's logits, SpladePooling('max')."""
    from lsr import SparseEncoder

    packaged("smollm2-135m")
    st_modules = pytest.importorskip("sentence_transformers.sparse_encoder.modules")
    if not hasattr(st_modules, "Transformer"):
        pytest.skip("sentence-transformers < 6.1 has no Transformer with transformer_task")
    from benchmarks.bench_encode import ST, compare_batches

    texts = [t for t in TEXTS if t] + ["Ribosomes translate mRNA into protein."]
    ours = SparseEncoder.from_pretrained("smollm2-135m", max_length=40).encode_documents(texts, batch_size=2)
    st = ST("smollm2-135m", "cpu", batch_size=2, max_length=40, causal=True)
    got = compare_batches(ours, ST.as_batch(st.encode(texts)))
    assert got["support_mismatches"] == 0, got
    assert got["max_abs_diff"] < 1e-4, got  # left vs right padding: the same sums in another order
