"""Inference-free queries (lsr.inference_free) and their trainer (lsr.train.lookup), on tiny models built in code:
query vectors against a naive per-text formula, documents equal to the document encoder's, save / load, refusals,
and a training run on a toy training set that lowers its loss and loads through SparseEncoder.from_pretrained."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_train import config, save_tiny
from tiny_models import WORDS, tiny_llama

from lsr.config import SparseEncoderConfig
from lsr.inference_free import InferenceFreeEncoder, LookupConfig
from lsr.sparse_encoder import SparseEncoder
from lsr.train.__main__ import run
from lsr.train.lookup import idf, mean_embeddings, query_matrix
from lsr.vocab import vocab_hash


def llama_encoder(dense: bool) -> SparseEncoder:
    lm, tok = tiny_llama()
    V = lm.config.vocab_size
    cfg = SparseEncoderConfig(kind="causal", vocab_size=V, vocab_hash=vocab_hash(tok, V),
                              dense_pooling="mean" if dense else None)  # fmt: skip
    return SparseEncoder(lm, tok, cfg).eval()


def lookup(doc: SparseEncoder, seed: int = 0, dense: bool = False) -> InferenceFreeEncoder:
    rng = np.random.default_rng(seed)
    w = rng.normal(0.5, 1.0, doc.vocab_size).astype(np.float32)  # some negative: relu'd away
    H = doc.backbone.hidden_size
    proj = rng.normal(0, 1, (H, H)).astype(np.float32) if dense else None
    return InferenceFreeEncoder(doc, LookupConfig("unused", doc.vocab_size, doc.vocab_hash, dense=dense), w, proj)


texts_st = st.lists(st.lists(st.sampled_from(WORDS[:40]), max_size=8).map(" ".join), min_size=1, max_size=6)


@settings(max_examples=30, deadline=None)
@given(texts=texts_st, seed=st.integers(0, 5))
def test_query_vectors_equal_the_naive_formula(texts: list[str], seed: int) -> None:
    doc = llama_encoder(dense=True)
    enc = lookup(doc, seed, dense=True)
    got = enc.encode(texts, "query")
    emb = doc.backbone.lm.get_input_embeddings().weight.detach().numpy()
    raw = np.random.default_rng(seed).normal(0.5, 1.0, doc.vocab_size).astype(np.float32)
    for i, t in enumerate(texts):
        ids = doc.tokenizer(t, add_special_tokens=False)["input_ids"]
        want = {v: float(raw[v]) for v in set(ids) if raw[v] > 0}
        idx, val = got.sparse.row(i)
        assert dict(zip(idx.tolist(), val.tolist())) == pytest.approx(want)
        if ids:
            v = enc.dense_proj @ emb[ids].mean(axis=0)
            np.testing.assert_allclose(got.dense[i], v / np.linalg.norm(v), rtol=1e-5, atol=1e-6)
        else:
            assert not got.dense[i].any()


def test_documents_go_through_the_document_encoder() -> None:
    doc = llama_encoder(dense=False)
    enc = lookup(doc)
    texts = ["w1 w2 w3", "w4", ""]
    a, b = enc.encode_documents(texts), doc.encode_documents(texts)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert enc.vocab_hash == doc.vocab_hash and enc.dense_dim is None


def test_save_load_and_refusals(tmp_path: Path) -> None:
    doc_folder = save_tiny(tmp_path / "doc", "causal", dense_pooling="mean")
    doc = SparseEncoder.from_pretrained(doc_folder)
    enc = lookup(doc, dense=True)
    enc.config.document_encoder = doc_folder
    enc.save(tmp_path / "if")
    back = SparseEncoder.from_pretrained(tmp_path / "if")  # dispatches on query_lookup.json
    assert isinstance(back, InferenceFreeEncoder)
    texts = ["w1 w2 w2 w3", "w9"]
    got, want = back.encode(texts, "query"), enc.encode(texts, "query")
    for a, b in zip(got.sparse, want.sparse):  # indptr, indices, values
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got.dense, want.dense)
    with pytest.raises(ValueError, match="settings are fixed"):
        SparseEncoder.from_pretrained(tmp_path / "if", echo=True)
    with pytest.raises(ValueError, match="another vocabulary"):
        InferenceFreeEncoder(doc, enc.config, np.zeros(3, np.float32), enc.dense_proj)
    with pytest.raises(ValueError, match="dense"):
        InferenceFreeEncoder(doc, LookupConfig("x", doc.vocab_size, doc.vocab_hash, dense=True), enc.weight)
    other = save_tiny(tmp_path / "other", "mlm")  # another vocabulary under the recorded name
    cfg = json.loads((tmp_path / "if" / "query_lookup.json").read_text())
    cfg["document_encoder"] = other
    (tmp_path / "if" / "query_lookup.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="another vocabulary"):
        SparseEncoder.from_pretrained(tmp_path / "if")


def test_idf_and_the_differentiable_query_matrix_by_hand() -> None:
    w = idf([[1, 1, 2], [2], []], 4)
    np.testing.assert_allclose(w, np.log(4 / np.array([1, 2, 3, 1])), rtol=1e-6)
    weight = torch.tensor([0.5, -1.0, 2.0, 3.0], requires_grad=True)
    q = query_matrix([[2, 1, 2], [3], []], weight)
    assert q.tolist() == [[0.0, 0.0, 2.0, 0.0], [0.0, 0.0, 0.0, 3.0], [0.0] * 4]
    q.sum().backward()
    assert weight.grad.tolist() == [0.0, 0.0, 1.0, 1.0]  # relu'd entry gets no gradient, a repeat counts once
    emb = torch.arange(8.0).reshape(4, 2)
    assert mean_embeddings([[0, 2], []], emb).tolist() == [[2.0, 3.0], [0.0, 0.0]]


def test_training_lowers_the_loss_and_the_model_serves(tmp_path: Path) -> None:
    base = save_tiny(tmp_path / "doc", "causal", dense_pooling="mean")
    cfg = config(tmp_path, model={"base": base, "queries": "lookup"}, optim={"lr": 0.05, "epochs": 6})
    folder = run(cfg, show_progress=False)
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    first, last = log[0], log[-1]
    assert {"infonce", "kl", "dense_infonce", "dense_kl"} <= set(first)
    assert last["infonce"] + last["kl"] < first["infonce"] + first["kl"]
    enc = SparseEncoder.from_pretrained(folder)
    assert isinstance(enc, InferenceFreeEncoder) and enc.dense_dim == 32
    q = enc.encode(["w1 w2 w3"], "query")
    assert q.sparse.nnz > 0 and q.dense.shape == (1, 32)
    with pytest.raises(ValueError, match="queries must be"):
        config(tmp_path / "x", model={"base": base, "queries": "both"})


def test_saved_settings_refuse_another_version_and_unknown_keys(tmp_path: Path) -> None:
    from lsr.inference_free import LOOKUP_CONFIG

    LookupConfig("enc", 10, "h").save(tmp_path)
    raw = json.loads((tmp_path / LOOKUP_CONFIG).read_text())
    (tmp_path / LOOKUP_CONFIG).write_text(json.dumps({**raw, "format_version": 99}))
    with pytest.raises(ValueError, match="query-lookup format 99, expected 1"):
        LookupConfig.load(tmp_path)
    (tmp_path / LOOKUP_CONFIG).write_text(json.dumps({**raw, "extra": 1}))
    with pytest.raises(ValueError, match=r"unknown settings \['extra'\]"):
        LookupConfig.load(tmp_path)
    (tmp_path / LOOKUP_CONFIG).write_text(json.dumps(raw))
    assert LookupConfig.load(tmp_path) == LookupConfig("enc", 10, "h")


def test_vectors_computed_elsewhere_train_the_same_model(tmp_path: Path) -> None:
    """LookupTrainer.train(vectors=) with the frozen encoder's own vectors (more documents than the training set
    holds, in another order) trains the same weights as encoding the training documents itself."""
    import numpy as np

    from lsr.train.lookup import LookupTrainer

    base = save_tiny(tmp_path / "doc", "causal", dense_pooling="mean")
    cfg = config(tmp_path, model={"base": base, "queries": "lookup"}, optim={"lr": 0.05, "epochs": 2})
    plain = LookupTrainer(cfg).train(show_progress=False)
    tr = LookupTrainer(config(tmp_path / "b", model={"base": base, "queries": "lookup"},
                              optim={"lr": 0.05, "epochs": 2}))  # fmt: skip
    ids = sorted(tr.data.docs, reverse=True) + ["extra"]
    enc = tr.encoder.encode([tr.data.docs[d] for d in ids[:-1]] + ["w1 w2"], "document")
    got = tr.train(show_progress=False, vectors=(ids, enc.sparse.to_scipy(tr.encoder.vocab_size), enc.dense))
    a, b = SparseEncoder.from_pretrained(plain), SparseEncoder.from_pretrained(got)
    np.testing.assert_allclose(a.weight, b.weight, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.dense_proj, b.dense_proj, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="lack"):
        tr.train(show_progress=False, vectors=(ids[1:], enc.sparse.to_scipy(tr.encoder.vocab_size)[1:], enc.dense[1:]))
