"""The oneDNN feed-forward path against HF's own BertLayer code, on random inputs and tiny random BERTs."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from lsr import fused_ffn  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")


def bert(hidden: int = 32, inter: int = 64, act: str = "gelu", seed: int = 0):  # noqa: ANN201
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=50,
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=inter,
        hidden_act=act,
        max_position_embeddings=64,
    )
    return BertModel(cfg).eval()


@settings(max_examples=30, deadline=None)
@given(
    hidden=st.sampled_from([8, 32, 128]),
    inter=st.sampled_from([16, 64, 512]),
    rows=st.integers(1, 70),
    scale=st.floats(0.01, 30.0),
    seed=st.integers(0, 2**16),
)
def test_fused_block_matches_hf(hidden: int, inter: int, rows: int, scale: float, seed: int) -> None:
    layer = bert(hidden, inter, seed=seed % 7).encoder.layer[0]
    with torch.no_grad():  # weights beyond the init's scale too
        for p in layer.parameters():
            p.mul_(1 + seed % 3)
    x = torch.randn((rows, hidden), generator=torch.Generator().manual_seed(seed)) * scale
    with torch.inference_mode():
        want = type(layer).feed_forward_chunk(layer, x)
        got = fused_ffn.fused_feed_forward(layer, x)
        got3 = fused_ffn.fused_feed_forward(layer, x.view(1, rows, hidden))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(got3.view(rows, hidden).numpy(), got.numpy())


def test_installed_model_matches_hf_and_keeps_hf_outside_inference() -> None:
    ref, fused = bert(), bert()
    assert fused_ffn.install(fused) == 2
    ids = torch.randint(0, 50, (3, 17), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    with torch.inference_mode():
        want = ref(input_ids=ids, attention_mask=mask).last_hidden_state
        got = fused(input_ids=ids, attention_mask=mask).last_hidden_state
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
    # with autograd (training, distillation) the layer runs HF's own code: same bits, gradients flow
    out_ref = ref(input_ids=ids, attention_mask=mask).last_hidden_state
    out = fused(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.equal(out, out_ref)
    out.sum().backward()
    assert fused.encoder.layer[0].intermediate.dense.weight.grad is not None


def test_only_exact_gelu_bert_layers_are_fused() -> None:
    assert fused_ffn.install(bert(act="gelu_new")) == 0  # tanh-approximated GELU: HF's path
    assert fused_ffn.install(bert(act="relu")) == 0
    assert fused_ffn.install(torch.nn.Linear(2, 2)) == 0


def test_deep_copy_rebinds_to_the_copy() -> None:
    model = bert()
    fused_ffn.install(model)
    twin = copy.deepcopy(model)
    with torch.no_grad():
        twin.encoder.layer[0].intermediate.dense.weight.zero_()
    layer = twin.encoder.layer[0]
    assert layer.feed_forward_chunk.__self__ is layer
    x = torch.randn(5, 32)
    with torch.inference_mode():
        np.testing.assert_allclose(
            layer.feed_forward_chunk(x).numpy(), type(layer).feed_forward_chunk(layer, x).numpy(), rtol=1e-5, atol=1e-5
        )
