"""Sparse/dense encoders on tiny random BERT and Llama models against straightforward twins.

The twins run one text at a time with no padding and the full (T, V) logits; the encoder
batches, pads (left or right), sorts by length and pools over token chunks.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from hypothesis import assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from tiny_models import WORDS, tiny_bert, tiny_llama  # noqa: E402

from lsr import fast_head, pooling  # noqa: E402
from lsr.config import SparseEncoderConfig  # noqa: E402
from lsr.layout import Layout  # noqa: E402
from lsr.sparse_encoder import SparseEncoder  # noqa: E402
from lsr.vocab import vocab_hash  # noqa: E402

texts_st = st.lists(st.lists(st.sampled_from(WORDS), min_size=0, max_size=40).map(" ".join), min_size=0, max_size=9)


def make(kind: str, padding_side: str = "right", **settings_) -> SparseEncoder:
    lm, tok = tiny_bert() if kind == "mlm" else tiny_llama(padding_side=padding_side)
    V = lm.get_output_embeddings().weight.shape[0]
    cfg = SparseEncoderConfig(kind=kind, vocab_size=V, vocab_hash=vocab_hash(tok, V), **settings_)
    return SparseEncoder(lm, tok, cfg).eval()


def as_dicts(batch) -> list[dict[int, float]]:  # noqa: ANN001
    return [dict(zip(*(a.tolist() for a in batch.row(i)))) for i in range(batch.num_rows)]


def assert_same(got: list[dict], want: list[dict], rtol: float = 1e-5, atol: float = 1e-5) -> None:
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.keys() == w.keys(), (i, sorted(set(g) ^ set(w)))
        np.testing.assert_allclose([g[t] for t in w], list(w.values()), rtol=rtol, atol=atol, err_msg=str(i))


@torch.no_grad()
def naive_vectors(enc: SparseEncoder, texts: list[str], side: str = "document") -> list[dict[int, float]]:
    """One text at a time, no padding, full logits: the formulas written out directly."""
    cfg, lm, tok = enc.config, enc.backbone.lm, enc.tokenizer
    max_length = cfg.query_max_length if side == "query" else cfg.max_length
    special = set(tok.all_special_ids)
    out = []
    for t in texts:
        if cfg.kind == "mlm":  # the tokenizer's own truncation and special tokens
            ids = tok(t, truncation=True, max_length=max_length)["input_ids"]
            keep = [i not in special for i in ids]
        else:  # <s> + text (+ text again in echo mode)
            c = tok(t, add_special_tokens=False)["input_ids"]
            room = max_length - 1
            c = c[: room // 2] if cfg.echo else c[:room]
            ids = [tok.bos_token_id] + c + (c if cfg.echo else [])
            keep = [False] * (1 + (len(c) if cfg.echo else 0)) + [True] * len(c)
        x = torch.tensor([ids])
        logits = lm(input_ids=x).logits[0]  # T x V
        if enc.backbone.head_bias is not None:
            logits = logits + enc.backbone.head_bias
        hidden = (lm.base_model if cfg.kind == "mlm" else lm.get_decoder())(input_ids=x).last_hidden_state[0]
        keep_t = torch.tensor(keep)
        if not keep_t.any():
            out.append({})
            continue
        if cfg.pooling == "max":
            vec = torch.log1p(torch.relu(logits[keep_t])).max(dim=0).values
        else:
            vec = torch.log1p(torch.relu(logits[-1]))
        if enc.residual is not None:
            head_w = lm.get_output_embeddings().weight
            wp = head_w @ (enc.residual.proj.weight @ hidden[-1]) + enc.residual.bias  # W_head (G h) + b
            ind = torch.zeros_like(vec)
            ind[torch.tensor(ids)[keep_t]] = 1.0
            vec = vec + ind * (wp.max() - wp)
        if cfg.focus_window:
            k = cfg.focus_k_query if side == "query" else cfg.focus_k_document
            kept = sorted(range(len(vec)), key=lambda v: -float(vec[v]))[:k]
            mask = torch.zeros_like(vec)
            mask[kept] = 1.0
            vec = vec * mask
        if side == "query" and cfg.query_l2_norm:
            vec = vec / vec.norm()
        out.append({int(v): float(vec[v]) for v in vec.nonzero().ravel()})
    return out


@settings(max_examples=25)
@given(
    texts=texts_st,
    batch_size=st.integers(1, 5),
    chunk=st.integers(1, 9),
    fast=st.booleans(),
    workers=st.integers(1, 3),
)
def test_mlm_max_pooling_matches_naive(texts: list[str], batch_size: int, chunk: int, fast: bool, workers: int) -> None:
    """Both max-pooling paths: torch over token chunks, and the native int8-screened head (CPU, when built);
    one batch at a time or several batches on CPU workers."""
    enc = make("mlm", max_length=24)
    enc.token_chunk = chunk
    enc.use_fast_head = fast and fast_head.available()
    enc.workers = workers
    got = enc.encode_documents(texts, batch_size=batch_size)
    assert got.indices.dtype == np.uint32 and got.values.dtype == np.float32
    assert_same(as_dicts(got), naive_vectors(enc, texts))


@settings(max_examples=20)
@given(
    texts=texts_st,
    batch_size=st.integers(1, 5),
    padding=st.sampled_from(["left", "right"]),
    echo=st.booleans(),
    pool=st.sampled_from(["max", "last"]),
    fast=st.booleans(),
    workers=st.integers(1, 3),
    head_bias=st.booleans(),
)
def test_causal_pooling_matches_naive(
    texts: list[str], batch_size: int, padding: str, echo: bool, pool: str, fast: bool, workers: int, head_bias: bool
) -> None:
    enc = make("causal", padding_side=padding, max_length=30, echo=echo, pooling=pool, head_bias=head_bias)
    if head_bias:  # a trained LM-head bias: every path adds it to the logits before pooling
        with torch.no_grad():
            enc.backbone.head_bias.normal_(-0.5, 1.0)
    enc.token_chunk = 7
    enc.use_fast_head = fast and fast_head.available()
    enc.workers = workers
    assert_same(as_dicts(enc.encode_documents(texts, batch_size=batch_size)), naive_vectors(enc, texts), atol=1e-4)


def test_head_bias_in_the_training_path_and_refused_on_mlm() -> None:
    """The training forward (argmax rows kept, grad enabled) gives the inference vectors with a head bias too, and
    the bias gets a gradient."""
    enc = make("causal", echo=True, max_length=30, head_bias=True)
    with torch.no_grad():
        enc.backbone.head_bias.normal_(-0.5, 1.0)
    texts = ["w1 w2 w3 w4", "w5 w6", "w7 w8 w9"]
    batch = enc.layout.batch(enc.layout.tokenize(texts), enc.config.max_length)
    w, _ = enc(batch)  # grad enabled: pooling.max_project_packed
    w.sum().backward()
    assert enc.backbone.head_bias.grad is not None and enc.backbone.head_bias.grad.abs().sum() > 0
    want = as_dicts(enc.encode_documents(texts))
    got = [{int(v): float(row[v]) for v in row.nonzero().ravel()} for row in w.detach()]
    assert_same(got, want, atol=1e-4)
    with pytest.raises(ValueError, match="head_bias"):
        make("mlm", head_bias=True)


@settings(max_examples=15)
@given(texts=texts_st, batch_size=st.integers(1, 4), workers=st.integers(2, 4))
def test_cpu_workers_match_one_batch_at_a_time(texts: list[str], batch_size: int, workers: int) -> None:
    """Batches spread over CPU workers give the very same bits (sparse, dense, counters) as one at a time on
    one thread, and torch's thread count is what it was before. One thread for the reference, because each
    worker runs torch on one and a GEMM's rounding can depend on its thread count (seen on an AMD EPYC);
    and more texts than one batch, because a call of one batch runs on the caller's thread count."""
    assume(len(texts) > batch_size)
    enc = make("mlm", max_length=24, dense_pooling="mean")
    enc.workers = 1
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = enc.encode(texts, batch_size=batch_size)
    finally:
        torch.set_num_threads(threads)
    stats_one = dict(enc.stats)
    enc.workers = workers
    many = enc.encode(texts, batch_size=batch_size)
    assert torch.get_num_threads() == threads
    for a, b in zip(one.sparse, many.sparse):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(one.dense, many.dense)
    for key in ("texts", "tokens", "padded_tokens", "truncated"):
        assert enc.stats[key] == 2 * stats_one[key]


def test_cpu_workers_while_another_encode_runs_on_workers() -> None:
    """While one encode holds torch at one thread, a second one still spreads its batches over as many workers
    as torch was configured with, not one."""
    from lsr.sparse_encoder import _one_op_thread

    enc = make("mlm", max_length=24)
    threads = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        with _one_op_thread():
            assert torch.get_num_threads() == 1
            assert enc.cpu_workers() == 3
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(threads)


def test_cpu_worker_error_reaches_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch that fails on a worker (e.g. out of memory; raised here by a stand-in forward, the one fault
    we cannot cause with real input) fails the call, and torch's thread count is restored."""
    enc = make("mlm", max_length=24)
    enc.workers = 2

    def failing_forward(batch, side="document"):  # noqa: ANN001, ANN202
        raise RuntimeError("batch failed")

    monkeypatch.setattr(enc, "forward", failing_forward)
    threads = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="batch failed"):
        enc.encode_documents(["w1 w2"] * 12, batch_size=2)
    assert torch.get_num_threads() == threads


def test_tokenize_falls_back_to_the_hugging_face_call_when_the_backend_truncates() -> None:
    """A Rust tokenizer left with truncation configured is not called directly: the text is never cut."""
    from lsr.layout import _rust_backend

    _, tok = tiny_bert()
    text = " ".join(WORDS)
    full = tok(text, add_special_tokens=False)["input_ids"]
    assert _rust_backend(tok) is not None and Layout(tok).tokenize([text]) == [full]
    tok.backend_tokenizer.enable_truncation(5)
    assert _rust_backend(tok) is None
    assert Layout(tok).tokenize([text]) == [full] and len(full) == len(WORDS)


def test_echo_layout_offsets_by_hand() -> None:
    _, tok = tiny_llama()
    a, b, c = (tok.convert_tokens_to_ids(w) for w in ("w1", "w2", "w3"))
    for side in ("right", "left"):
        lay = Layout(tok, echo=True, padding_side=side)
        batch = lay.batch([[a, b, c], [a]], max_length=16)
        if side == "right":
            assert batch.input_ids.tolist() == [[2, a, b, c, a, b, c], [2, a, a, 0, 0, 0, 0]]
            assert batch.keep.tolist() == [[0, 0, 0, 0, 1, 1, 1], [0, 0, 1, 0, 0, 0, 0]]
            assert batch.last.tolist() == [6, 2]
        else:
            assert batch.input_ids.tolist() == [[2, a, b, c, a, b, c], [0, 0, 0, 0, 2, a, a]]
            assert batch.keep.tolist() == [[0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 0, 1]]
            assert batch.last.tolist() == [6, 6]
        assert batch.truncated == 0
    # max_length 6 leaves (6 - 1) // 2 = 2 tokens per copy: the 3-token text is cut and counted
    cut = Layout(tok, echo=True).batch([[a, b, c]], max_length=6)
    assert cut.input_ids.tolist() == [[2, a, b, a, b]] and cut.truncated == 1


def test_pool_special_tokens_matches_sentence_transformers_style_pooling() -> None:
    """SPLADE's reference code masks padding only, so [CLS]/[SEP] count; pool_special_tokens reproduces it."""
    enc = make("mlm", max_length=24, pool_special_tokens=True)
    texts = ["w1 w2 w3", "", "w4 w5 w6 w7 w8"]
    got = as_dicts(enc.encode_documents(texts, batch_size=2))
    with torch.no_grad():
        for g, t in zip(got, texts):
            logits = enc.backbone.lm(**enc.tokenizer([t], return_tensors="pt")).logits[0]
            vec = torch.log1p(torch.relu(logits)).max(dim=0).values
            assert_same([g], [{int(v): float(vec[v]) for v in vec.nonzero().ravel()}])
    assert got[1]  # the empty text still has [CLS] and [SEP]


def test_bidirectional_attention_sees_the_future_and_ignores_padding() -> None:
    causal = make("causal")
    bidi = make("causal", bidirectional=True)
    lay = causal.layout
    short = lay.tokenize(["w1 w2"])[0]
    longer = lay.tokenize(["w1 w2 w3 w4"])[0]
    with torch.no_grad():

        def first_hidden(enc: SparseEncoder, content: list[int]) -> torch.Tensor:
            b = lay.batch([content], 16)
            return enc.backbone.body(b.input_ids, b.attention_mask)[0, 1]

        assert torch.allclose(first_hidden(causal, short), first_hidden(causal, longer), atol=1e-6)
        assert not torch.allclose(first_hidden(bidi, short), first_hidden(bidi, longer), atol=1e-3)
        # padded batches (left or right) give the vectors of unpadded single texts
        texts = ["w1 w2 w3 w4 w5 w6", "w7", "w8 w9"]
        alone = [as_dicts(bidi.encode_documents([t]))[0] for t in texts]
        for side in ("left", "right"):
            b = make("causal", padding_side=side, bidirectional=True)
            assert_same(as_dicts(b.encode_documents(texts, batch_size=3)), alone, atol=1e-4)


def test_literal_residual_by_hand() -> None:
    w = torch.tensor([[0.5, 0.0, 0.0, 1.0]])
    w_prime = torch.tensor([[1.0, 3.0, 2.0, 0.0]])
    ind = torch.tensor([[True, True, False, False]])
    # max(w') = 3; compensation = [2, 0, 1, 3]; only the input's own tokens (0, 1) get it
    assert pooling.literal_residual(w, w_prime, ind).tolist() == [[2.5, 0.0, 0.0, 1.0]]


def test_input_indicator_by_hand() -> None:
    ids = torch.tensor([[5, 1, 3, 0], [2, 2, 0, 0]])
    keep = torch.tensor([[False, True, True, False], [True, True, False, False]])
    assert pooling.input_indicator(ids, keep, 6).int().tolist() == [[0, 1, 0, 1, 0, 0], [0, 0, 1, 0, 0, 0]]


def test_top_k_and_threshold_by_hand() -> None:
    w = torch.tensor([[0.125, 0.875, 0.0, 0.5, 0.25], [0.25, 0.0, 0.0, 0.0, 0.0]])
    assert pooling.top_k(w, 2).tolist() == [[0.0, 0.875, 0.0, 0.5, 0.0], [0.25, 0.0, 0.0, 0.0, 0.0]]
    assert pooling.top_k(w, 9).tolist() == w.tolist()
    assert pooling.threshold(w, 0.25).tolist() == [[0.0, 0.875, 0.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]]


def test_max_logits_by_hand() -> None:
    hidden = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]]])  # B=1, T=3, H=2
    keep = torch.tensor([[True, True, False]])  # the third position is padding

    def head(h: torch.Tensor) -> torch.Tensor:
        return h @ torch.tensor([[1.0, -1.0], [0.0, 1.0]])  # V=2

    # position logits: [1, -1], [0, 2] (the masked [3, 0] would win column 0)
    for chunk in (1, 2, 3):
        assert pooling.max_logits(hidden, keep, head, 2, chunk).tolist() == [[1.0, 2.0]]
    assert pooling.saturate(torch.tensor([float("-inf"), -1.0, np.e - 1])).tolist() == pytest.approx([0, 0, 1])


@pytest.mark.parametrize("kind", ["mlm", "causal"])
def test_prosper_options_match_naive(kind: str) -> None:
    texts = ["w1 w2 w3 w4 w5", "w6", "", "w7 w8 w9 w10 w11 w12 w13 w14"]
    enc = make(kind, literal_residual=True, focus_window=True, focus_k_query=3, focus_k_document=5, query_l2_norm=True)
    plain = make(kind)
    # zero-initialised residual: same vectors as without it (before the focusing window)
    enc.config.focus_window = False
    assert_same(as_dicts(enc.encode_documents(texts)), as_dicts(plain.encode_documents(texts)))
    enc.config.focus_window = True
    with torch.no_grad():
        enc.residual.proj.weight.normal_(0, 1.0)
        enc.residual.bias.normal_(0, 1.0)
    for side in ("document", "query"):
        got = as_dicts(enc.encode(texts, side).sparse)
        assert_same(got, naive_vectors(enc, texts, side), atol=1e-4)
        k = 3 if side == "query" else 5
        assert all(len(g) <= k for g in got)
    q = enc.encode_queries(texts[:2])
    assert np.allclose([np.linalg.norm(q.row(i)[1]) for i in range(2)], 1.0, atol=1e-5)


def test_many_blocks_tokenized_ahead_equal_small_calls() -> None:
    """Over 2,048 texts are tokenized a block ahead in a thread; the rows stay in order."""
    enc = make("mlm")
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(0, 9)))) for _ in range(2100)]
    whole = enc.encode_documents(texts, batch_size=8)
    parts = [enc.encode_documents(texts[i : i + 700], batch_size=8) for i in range(0, 2100, 700)]
    assert_same(as_dicts(whole), [d for p in parts for d in as_dicts(p)])


def test_encode_time_pruning_equals_pruning_afterwards() -> None:
    enc = make("mlm")
    texts = [" ".join(WORDS[i : i + 12]) for i in range(0, 30, 3)]
    full = as_dicts(enc.encode_documents(texts))
    top = as_dicts(enc.encode_documents(texts, top_k=4))
    thr = as_dicts(enc.encode_documents(texts, threshold=0.5))
    for f, t, h in zip(full, top, thr):
        best = sorted(f.items(), key=lambda kv: -kv[1])[:4]
        assert t == pytest.approx(dict(best))
        assert h == pytest.approx({k: v for k, v in f.items() if v > 0.5})


@pytest.mark.parametrize("mode", ["last", "mean"])
def test_dense_head_from_the_same_forward_pass(mode: str) -> None:
    enc = make("causal", dense_pooling=mode, echo=True)
    texts = ["w1 w2 w3", "w4", ""]
    out = enc.encode(texts, batch_size=2)
    assert out.dense.shape == (3, 32) and out.dense.dtype == np.float32
    with torch.no_grad():
        for i, t in enumerate(texts[:2]):
            c = enc.tokenizer(t, add_special_tokens=False)["input_ids"]
            h = enc.backbone.lm.get_decoder()(input_ids=torch.tensor([[2] + c + c])).last_hidden_state[0]
            v = h[-1] if mode == "last" else h[1 + len(c) :].mean(dim=0)
            np.testing.assert_allclose(out.dense[i], (v / v.norm()).numpy(), atol=1e-5)
    assert not out.dense[2].any()  # an empty text has a zero vector


def test_save_load_round_trip_is_exact(tmp_path) -> None:  # noqa: ANN001
    pytest.importorskip("peft")
    enc = make("causal", echo=True, literal_residual=True, dense_pooling="mean", max_length=40)
    enc.add_lora(r=4, alpha=8)
    texts = ["w1 w2 w3 w4", "w5 w6", "w7"]
    before_lora = enc.encode(texts)
    with torch.no_grad():
        for name, p in enc.named_parameters():
            if "lora_B" in name or "residual" in name:
                p.normal_(0, 0.5)
    ref = enc.encode(texts)
    assert as_dicts(ref.sparse) != as_dicts(before_lora.sparse)  # adapters and residual now matter
    enc.save(tmp_path / "enc")
    back = SparseEncoder.from_pretrained(tmp_path / "enc")
    assert back.config == enc.config and back.vocab_hash == enc.vocab_hash
    got = back.encode(texts)
    np.testing.assert_array_equal(got.sparse.indptr, ref.sparse.indptr)
    np.testing.assert_array_equal(got.sparse.indices, ref.sparse.indices)
    np.testing.assert_array_equal(got.sparse.values, ref.sparse.values)
    np.testing.assert_array_equal(got.dense, ref.dense)
    with pytest.raises(ValueError, match="fixed by its weights"):
        SparseEncoder.from_pretrained(tmp_path / "enc", echo=False)


def test_fresh_lora_changes_nothing() -> None:
    pytest.importorskip("peft")
    enc = make("mlm")
    texts = ["w1 w2 w3", "w4 w5"]
    before = as_dicts(enc.encode_documents(texts))
    enc.add_lora(r=2, alpha=4)
    assert any("lora_A" in n for n, _ in enc.named_parameters())
    assert_same(as_dicts(enc.encode_documents(texts)), before)


def test_bad_input_is_refused_or_documented() -> None:
    enc = make("mlm", max_length=12)
    empty = enc.encode_documents([])
    assert empty.num_rows == 0 and empty.nnz == 0
    with pytest.raises(TypeError, match="decode bytes first"):
        enc.encode_documents(["w1", b"w2\xff"])
    with pytest.raises(TypeError, match="expected str"):
        enc.encode_documents(["w1", None])
    with pytest.raises(TypeError, match="single string"):
        enc.encode_documents("w1 w2")
    with pytest.raises(ValueError, match="side"):
        enc.encode(["w1"], side="passage")
    with pytest.raises(ValueError, match="top_k"):
        enc.encode(["w1"], top_k=0)
    # lone surrogates (from surrogateescape decoding) are replaced, not fatal; empty text -> empty row
    out = enc.encode_documents(["w1 \udcff w2", "", "   "])
    assert out.num_rows == 3 and out.row(0)[0].size > 0 and out.row(1)[0].size == 0 and out.row(2)[0].size == 0
    before = enc.stats["truncated"]
    enc.encode_documents([" ".join(WORDS)])  # 40 words > 10 content tokens
    assert enc.stats["truncated"] == before + 1


def test_vocab_hash_tells_vocabularies_apart(tmp_path) -> None:  # noqa: ANN001
    from indexer import Index, IndexBuilder, VocabularyMismatchError

    bert, llama = make("mlm"), make("causal")
    assert bert.vocab_hash != llama.vocab_hash
    assert bert.vocab_hash == make("mlm").vocab_hash
    texts = ["w1 w2", "w3 w4 w5"]
    with IndexBuilder(tmp_path / "idx", vocab_size=bert.vocab_size, vocab_hash=bert.vocab_hash) as b:
        b.add(["a", "b"], bert.encode_documents(texts))
    index = Index.open(tmp_path / "idx")
    index.check_vocab(bert.vocab_hash)
    with pytest.raises(VocabularyMismatchError, match="encode queries with the index's model"):
        index.check_vocab(llama.vocab_hash)


def test_model_resolution_messages(tmp_path) -> None:  # noqa: ANN001
    from lsr import models

    with pytest.raises(FileNotFoundError, match="neither an alias"):
        models.resolve("no-such-model")
    with pytest.raises(FileNotFoundError, match="not in the local Hugging Face cache"):
        models.resolve("nobody/no-such-model-anywhere")
    assert models.resolve(tmp_path).path == tmp_path


def test_adapters_only_save_reads_the_base_again(tmp_path) -> None:  # noqa: ANN001
    """LoRA + residual saved without the backbone: megabytes, the same vectors, and a changed base is refused."""
    pytest.importorskip("peft")
    lm, tok = tiny_llama()
    lm.save_pretrained(tmp_path / "hf")
    tok.save_pretrained(tmp_path / "hf")
    enc = SparseEncoder.from_pretrained(
        tmp_path / "hf", echo=True, literal_residual=True, dense_pooling="mean", head_bias=True
    )
    enc.add_lora(r=4, alpha=8)
    with torch.no_grad():
        for name, p in enc.named_parameters():
            if "lora_B" in name or "residual" in name or "head_bias" in name:
                p.normal_(0, 0.5)
    texts = ["w1 w2 w3 w4", "w5 w6", "w7", ""]
    ref = enc.encode(texts)
    enc.save(tmp_path / "adapters")
    whole = enc.save(tmp_path / "whole", adapters_only=False)
    small = (tmp_path / "adapters" / "model.safetensors").stat().st_size
    assert small < (whole / "model.safetensors").stat().st_size / 3
    back = SparseEncoder.from_pretrained(tmp_path / "adapters")
    assert back.config.base_sha256 and set(back.trained_parts()) == set(enc.trained_parts())
    assert "backbone.head_bias" in back.trained_parts()
    got = back.encode(texts)
    assert as_dicts(got.sparse) == as_dicts(ref.sparse)
    np.testing.assert_array_equal(got.dense, ref.dense)
    assert not SparseEncoder.from_pretrained(whole).config.base_sha256
    # another base under the same name: refused, naming what to do
    other, _ = tiny_llama(seed=5)
    other.save_pretrained(tmp_path / "hf")
    with pytest.raises(ValueError, match="install the base"):
        SparseEncoder.from_pretrained(tmp_path / "adapters")
    assert as_dicts(SparseEncoder.from_pretrained(whole).encode(texts).sparse) == as_dicts(ref.sparse)


@settings(max_examples=25)
@given(texts=texts_st, kind=st.sampled_from(["mlm", "causal"]), echo=st.booleans(), hidden=st.integers(1, 5))
def test_host_built_kept_rows_equal_the_boolean_mask(texts: list[str], kind: str, echo: bool, hidden: int) -> None:
    """Batch.kept_rows (positions and counts built on the host, so the device is never waited for) gives
    hidden[keep] and keep.sum(dim=1), its slow, obvious twin."""
    enc = make(kind, echo=echo and kind == "causal", max_length=24)
    batch = enc.layout.batch(enc.layout.tokenize(texts), enc.config.max_length)
    h = torch.randn(*batch.input_ids.shape, hidden)
    rows, lengths = batch.kept_rows(h)
    assert torch.equal(rows, h[batch.keep]) and torch.equal(lengths, batch.keep.sum(dim=1))
    assert lengths.device.type == "cpu"
