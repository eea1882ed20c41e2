"""A dense head on a chosen block (``dense_layer``) with a trained projection (``dense_projection``), added to a
trained sparse encoder (``SparseEncoder.add_dense_head``) and trained beside it frozen (lsr.train.dense_head), on
tiny models built in code: vectors against a naive per-text formula, sparse vectors unchanged, save / load,
refusals, and a training run that lowers its loss, equals one fed with rows computed elsewhere, and serves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_train import config, save_tiny
from tiny_models import WORDS, tiny_bert, tiny_llama

from lsr.config import SparseEncoderConfig
from lsr.sparse_encoder import SparseEncoder
from lsr.train.__main__ import run
from lsr.train.dense_head import DenseHeadTrainer
from lsr.train.trainer import Trainer
from lsr.vocab import vocab_hash

texts_st = st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=12).map(" ".join), min_size=1, max_size=5)


def encoder(kind: str, echo: bool = False, **settings) -> SparseEncoder:  # noqa: ANN003
    lm, tok = tiny_llama() if kind == "causal" else tiny_bert()
    V = lm.config.vocab_size
    cfg = SparseEncoderConfig(kind=kind, vocab_size=V, vocab_hash=vocab_hash(tok, V), echo=echo, **settings)
    return SparseEncoder(lm, tok, cfg).eval()


def naive_dense(enc: SparseEncoder, text: str, side: str) -> np.ndarray:
    """One text alone: the hugging-face model's own hidden states of block ``dense_layer`` (every block's output,
    ``output_hidden_states``), averaged over the positions the layout pools, through P, normalised."""
    b = enc.layout.batch(enc.layout.tokenize([text]), enc.max_length_for(side))
    keep = b.keep[0].bool()
    with torch.no_grad():
        out = enc.backbone.lm(input_ids=b.input_ids, attention_mask=b.attention_mask, output_hidden_states=True)
        h = out.hidden_states[enc.config.dense_layer][0]
        v = h[keep].mean(dim=0)
        if enc.dense_proj is not None:
            v = enc.dense_proj.weight @ v
    return (v / v.norm()).numpy()


@settings(max_examples=20, deadline=None)
@given(texts=texts_st, kind=st.sampled_from(["mlm", "causal"]), echo=st.booleans(), seed=st.integers(0, 9))
def test_dense_vectors_equal_the_naive_formula(texts: list[str], kind: str, echo: bool, seed: int) -> None:
    enc = encoder(kind, echo=echo and kind == "causal").add_dense_head("mean", layer=1)
    with torch.no_grad():
        enc.dense_proj.weight.copy_(torch.from_numpy(np.random.default_rng(seed).normal(0, 1, (32, 32))))
    for side in ("query", "document"):
        got = enc.encode(texts, side, batch_size=2).dense
        for i, t in enumerate(texts):
            np.testing.assert_allclose(got[i], naive_dense(enc, t, side), rtol=1e-4, atol=1e-5)


def test_adding_a_head_keeps_the_sparse_vectors_and_saves_and_loads(tmp_path: Path) -> None:
    enc = encoder("causal", echo=True, literal_residual=True)
    docs = ["w1 w2 w3 w4", "w5 w6"]
    before = enc.encode(docs).sparse.to_scipy(enc.vocab_size).toarray()
    enc.add_dense_head("mean", layer=1)
    got = enc.encode(docs)
    np.testing.assert_array_equal(got.sparse.to_scipy(enc.vocab_size).toarray(), before)
    # the identity projection changes nothing: the same vectors as a head without one
    plain = encoder("causal", echo=True, literal_residual=True, dense_pooling="mean", dense_layer=1)
    np.testing.assert_allclose(got.dense, plain.encode(docs).dense, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        enc.dense_proj.weight.mul_(-2.0).add_(0.3)
    saved = enc.save(tmp_path / "m")
    assert json.loads((saved / "lsr_config.json").read_text())["dense_layer"] == 1
    loaded = SparseEncoder.from_pretrained(saved)
    np.testing.assert_allclose(loaded.encode(docs).dense, enc.encode(docs).dense, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="already has a dense head"):
        enc.add_dense_head()
    with pytest.raises(ValueError, match="2 blocks"):
        encoder("causal").add_dense_head("mean", layer=2)
    with pytest.raises(ValueError, match="set dense_pooling too"):
        encoder("causal", dense_layer=1)
    with pytest.raises(ValueError, match=">= 0"):
        encoder("causal", dense_pooling="mean", dense_layer=-1)


def dense_config(tmp_path: Path, **model):  # noqa: ANN003, ANN201
    base = save_tiny(tmp_path / "sparse", "causal", echo=True, literal_residual=True)
    m = {"base": base, "dense_head_only": True, "settings": {"dense_pooling": "mean", "dense_layer": 1}, **model}
    return config(tmp_path, model=m, loss={"dense": 1.0}, optim={"lr": 0.05, "epochs": 3})


def test_the_dense_head_trains_alone_and_the_model_serves(tmp_path: Path) -> None:
    cfg = dense_config(tmp_path)
    folder = run(cfg, show_progress=False)
    log = [json.loads(x) for x in (Path(cfg.run.out) / "log.jsonl").read_text().splitlines()]
    first, last = log[0], log[-1]
    assert set(first) >= {"dense_infonce", "dense_kl"}
    assert last["dense_infonce"] + last["dense_kl"] < first["dense_infonce"] + first["dense_kl"]
    base = SparseEncoder.from_pretrained(cfg.model.base)
    model = SparseEncoder.from_pretrained(folder)
    assert (model.config.dense_pooling, model.config.dense_layer, model.config.dense_projection) == ("mean", 1, True)
    assert not torch.equal(model.dense_proj.weight, torch.eye(32))
    docs = ["w1 w2 w3", "w7 w8"]
    a, b = base.encode(docs), model.encode(docs)
    np.testing.assert_array_equal(a.sparse.to_scipy(base.vocab_size).toarray(),
                                  b.sparse.to_scipy(base.vocab_size).toarray())  # fmt: skip
    assert b.dense.shape == (2, 32) and np.allclose(np.linalg.norm(b.dense, axis=1), 1.0, atol=1e-5)


def test_rows_computed_elsewhere_train_the_same_head(tmp_path: Path) -> None:
    plain = DenseHeadTrainer(dense_config(tmp_path / "a")).train(show_progress=False)
    tr = DenseHeadTrainer(dense_config(tmp_path / "b"))
    ids = sorted(tr.data.docs, reverse=True) + ["extra"]
    docs = tr.encoder.encode([tr.data.docs[d] for d in ids[:-1]] + ["w1 w2"], "document").dense
    texts = sorted({r["query"] for r in tr.data.rows}) + ["w3"]
    queries = tr.encoder.encode(texts, "query").dense
    got = tr.train(show_progress=False, documents=(ids, docs), queries=(texts, queries))
    a, b = SparseEncoder.from_pretrained(plain), SparseEncoder.from_pretrained(got)
    torch.testing.assert_close(a.dense_proj.weight, b.dense_proj.weight, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="lack"):
        tr.train(show_progress=False, documents=(ids[1:], docs[1:]))
    with pytest.raises(ValueError, match="finite"):
        bad = queries.copy()
        bad[0, 0] = np.nan
        tr.train(show_progress=False, documents=(ids, docs), queries=(texts, bad))


def test_config_refusals(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dense_head_only trains the dense head alone"):
        dense_config(tmp_path / "a", lora=True)
    with pytest.raises(ValueError, match="settings takes dense_pooling"):
        dense_config(tmp_path / "b", settings={"dense_layer": 1})
    with pytest.raises(ValueError, match="settings takes dense_pooling"):
        dense_config(tmp_path / "c", settings={"dense_pooling": "mean", "echo": False})
    cfg = dense_config(tmp_path / "d")
    cfg.model.settings["dense_layer"] = 5
    with pytest.raises(ValueError, match="2 blocks"):
        DenseHeadTrainer(cfg)


def test_joint_training_trains_the_projection_with_the_adapters(tmp_path: Path) -> None:
    base = save_tiny(tmp_path / "llama", "causal", echo=True, literal_residual=True, dense_pooling="mean",
                     dense_layer=1, dense_projection=True)  # fmt: skip
    tr = Trainer(config(tmp_path, model={"base": base, "lora": True, "lora_r": 4}))
    names = {n for n, p in tr.encoder.named_parameters() if p.requires_grad}
    assert "dense_proj.weight" in names
    before = tr.encoder.dense_proj.weight.detach().clone()
    folder = tr.train(show_progress=False)
    loaded = SparseEncoder.from_pretrained(folder)
    assert not torch.equal(loaded.dense_proj.weight, before)
    assert "dense_proj.weight" in loaded.trained_parts()
