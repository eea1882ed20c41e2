"""Tiny random BERT-MLM and Llama-style models with word-level tokenizers, built in code (no hub)."""

from __future__ import annotations

import torch

WORDS = [f"w{i}" for i in range(40)]


def _tokenizer(specials: list[str], template: str | None, **roles: str):  # noqa: ANN202
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(specials + WORDS)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]" if "[UNK]" in vocab else "<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    if template:
        tk.post_processor = processors.TemplateProcessing(
            single=template, special_tokens=[(t, vocab[t]) for t in specials if t in template]
        )
    return PreTrainedTokenizerFast(tokenizer_object=tk, **roles)


def tiny_bert(seed: int = 0):  # noqa: ANN201
    from transformers import BertConfig, BertForMaskedLM

    tok = _tokenizer(
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        "[CLS] $A [SEP]",
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        architectures=["BertForMaskedLM"],
    )
    model = BertForMaskedLM(cfg).eval()
    with torch.no_grad():  # larger logits than the init gives, so plenty of them are positive
        model.cls.predictions.bias.normal_(0.0, 1.0)
    return model, tok


def tiny_llama(seed: int = 0, padding_side: str = "right"):  # noqa: ANN201
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = _tokenizer(
        ["<pad>", "<unk>", "<s>", "</s>"],
        "<s> $A",
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
    )
    tok.padding_side = padding_side
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=False,
        architectures=["LlamaForCausalLM"],
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(20.0)  # spread the logits so max pooling has positives to find
    return model, tok


def save_tiny_bert_encoder(folder):  # noqa: ANN001, ANN201
    """A SparseEncoder (SPLADE pooling) on ``tiny_bert()``, saved to ``folder``: a model any process can load."""
    from lsr import SparseEncoder
    from lsr.config import SparseEncoderConfig
    from lsr.vocab import vocab_hash

    lm, tok = tiny_bert()
    V = lm.get_output_embeddings().weight.shape[0]
    enc = SparseEncoder(lm, tok, SparseEncoderConfig(kind="mlm", vocab_size=V, vocab_hash=vocab_hash(tok, V)))
    return enc.save(folder)


def build_tiny_collection(folder, docs: int, seed: int, shard_size: int):  # noqa: ANN001, ANN201
    """``folder/col``: an ``lsr index`` collection of ``docs`` random word documents (ids d0, d1, ...) encoded by
    ``save_tiny_bert_encoder`` (sparse only)."""
    import json

    import numpy as np

    from lsr import SparseEncoder
    from retrieval.collection import Job, build

    model = save_tiny_bert_encoder(folder / "model")
    rng = np.random.default_rng(seed)
    with open(folder / "c.jsonl", "w", encoding="utf-8") as f:
        for i in range(docs):
            f.write(json.dumps({"_id": f"d{i}", "text": " ".join(rng.choice(WORDS, int(rng.integers(1, 14))))}) + "\n")
    job = Job(str(folder / "c.jsonl"), None, "_id", ("title", "text"), str(model), None, shard_size)
    build(folder / "col", job, SparseEncoder.from_pretrained(model))
    return folder / "col"
