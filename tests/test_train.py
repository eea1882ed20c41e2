"""The training pipeline on tiny random models built in code: config, training-set files, trainer, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from st_twin import largest_gap
from tiny_models import WORDS, tiny_bert, tiny_llama

from lsr.config import SparseEncoderConfig
from lsr.sparse_encoder import SparseEncoder
from lsr.train import data
from lsr.train.config import TrainConfig, parse_overrides
from lsr.train.trainer import Trainer
from lsr.vocab import vocab_hash


def save_tiny(folder: Path, kind: str = "mlm", seed: int = 0, **settings) -> str:  # noqa: ANN003
    lm, tok = tiny_bert(seed) if kind == "mlm" else tiny_llama(seed)
    V = lm.config.vocab_size
    cfg = SparseEncoderConfig(kind=kind, vocab_size=V, vocab_hash=vocab_hash(tok, V), **settings)
    SparseEncoder(lm, tok, cfg).save(folder)
    return str(folder)


def toy_trainset(folder: Path, queries: int = 24, seed: int = 0) -> str:
    """Queries made of their positive's first words; the teachers prefer the positive, with noise."""
    rng = np.random.default_rng(seed)
    docs = {f"d{i}": " ".join(rng.choice(WORDS, 12)) for i in range(60)}
    rows = []
    for i in range(queries):
        ids = [str(x) for x in rng.choice(list(docs), 10, replace=False)]
        noise = rng.random(10).astype(np.float32)
        rows.append(
            {
                "qid": f"q{i}",
                "query": " ".join(docs[ids[0]].split()[:4]),
                "source": "train" if i % 2 else "pseudo",
                "doc_ids": ids,
                "label": [1] + [0] * 9,
                "bm25": list(noise + np.eye(10, dtype=np.float32)[0] * 5),
                "splade": list(noise),
                "dense": list(noise * 0.1),
            }
        )
    return str(data.write(folder, rows, docs, {"generator": "toy"}))


def config(tmp_path: Path, **sections) -> TrainConfig:  # noqa: ANN003
    raw = {
        "model": {"base": save_tiny(tmp_path / "base")},
        "data": {"train": toy_trainset(tmp_path / "set"), "batch_size": 4, "group_size": 4},
        "loss": {"kl": 1.0, "teachers": {"bm25": 1.0, "label": 1.0}},
        "optim": {"lr": 5e-3, "epochs": 2},
        "run": {"out": str(tmp_path / "run"), "log_every": 1},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return TrainConfig.from_dict(raw)


def trainable(enc: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in enc.named_parameters() if p.requires_grad}


# ---------------------------------------------------------------- config


def test_config_refuses_unknown_keys_and_bad_values(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text('[data]\ntrain = "somewhere"\nbatch = 3\n')
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['batch'\] in \[data\]"):
        TrainConfig.load(path)
    path.write_text('[dat]\ntrain = "x"\n')
    with pytest.raises(ValueError, match="unknown section"):
        TrainConfig.load(path)
    path.write_text('[data]\ntrain = "x"\n[loss]\nteachers = { cross_encoder = 1.0 }\n')
    with pytest.raises(ValueError, match="unknown teacher"):
        TrainConfig.load(path)
    path.write_text("[data\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        TrainConfig.load(path)
    with pytest.raises(FileNotFoundError):
        TrainConfig.load(tmp_path / "missing.toml")
    path.write_text('[data]\ntrain = "x"\n')
    cfg = TrainConfig.load(path, parse_overrides(["optim.lr=1e-4", "run.device=cpu", "sparsity.query=0"]))
    assert cfg.optim.lr == 1e-4 and cfg.run.device == "cpu" and cfg.sparsity.query == 0
    assert cfg.loss.infonce == 1.0  # a default from code
    with pytest.raises(ValueError, match="SECTION.KEY=VALUE"):
        parse_overrides(["lr=3"])
    path.write_text('[data]\ntrain = "x"\n[model]\nsettings = { echo = true, dense_pooling = "mean" }\n')
    nested = parse_overrides(["model.settings.echo=false", "model.settings.dense_pooling=none", "model.settings.k=7"])
    cfg = TrainConfig.load(path, nested)
    assert cfg.model.settings == {"echo": False, "dense_pooling": None, "k": 7}
    with pytest.raises(ValueError, match=r"\[data.train\] must be a table"):
        TrainConfig.load(path, parse_overrides(["data.train.x=1"]))
    with pytest.raises(ValueError, match="every loss weight is 0"):
        TrainConfig.from_dict({"data": {"train": "x"}, "loss": {"infonce": 0.0}})


# ---------------------------------------------------------------- training-set files


def test_trainset_round_trip_and_damage(tmp_path: Path) -> None:
    folder = Path(toy_trainset(tmp_path / "set"))
    ts = data.TrainSet.load(folder)
    assert len(ts) == 24 and len(data.TrainSet.load(folder, ["pseudo"])) == 12
    manifest = json.loads((folder / data.MANIFEST).read_text())
    assert manifest["counts"]["queries"] == 24 and manifest["counts"]["by_source"] == {"pseudo": 12, "train": 12}
    # the same (seed, epoch) gives the same batches; another epoch another order
    a = [b.docs for _, b in ts.batches(1, 0, 0, 4, 4, 9)]
    assert a == [b.docs for _, b in ts.batches(1, 0, 0, 4, 4, 9)]
    assert a != [b.docs for _, b in ts.batches(1, 1, 0, 4, 4, 9)]
    assert a[2:] == [b.docs for _, b in ts.batches(1, 0, 2, 4, 4, 9)]
    _, first = next(ts.batches(1, 0, 0, 4, 4, 9))
    assert first.teachers["label"][:, 0].tolist() == [1.0] * 4 and first.teachers["label"][:, 1:].sum() == 0
    with pytest.raises(ValueError, match="no training queries"):
        data.TrainSet.load(folder, ["nothing"])
    (folder / data.DOCS_FILE).write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="damaged training set"):
        data.TrainSet.load(folder)
    (folder / data.DOCS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="lsr trainset"):
        data.TrainSet.load(folder)


def test_trainset_checksum_catches_a_changed_file(tmp_path: Path) -> None:
    folder = Path(toy_trainset(tmp_path / "a"))
    other = Path(toy_trainset(tmp_path / "b", seed=1))
    (folder / data.TRAIN_FILE).write_bytes((other / data.TRAIN_FILE).read_bytes())
    with pytest.raises(ValueError, match="checksum"):
        data.TrainSet.load(folder)


# ---------------------------------------------------------------- the trainer


def test_training_lowers_the_loss_on_a_toy_batch(tmp_path: Path) -> None:
    cfg = config(tmp_path, loss={"margin_mse": 0.1})
    tr = Trainer(cfg)
    _, batch = next(tr.data.batches(0, 0, 0, 4, 4, 9))
    first, stats = tr.loss(batch, 0)
    assert {"infonce", "kl", "margin_mse", "reg_query", "reg_document"} <= set(stats)
    for _ in range(25):
        loss, _ = tr.loss(batch, 0)
        loss.backward()
        tr.optimizer.step()
        tr.optimizer.zero_grad()
    last, _ = tr.loss(batch, 0)
    assert float(last.detach()) < 0.5 * float(first.detach())


def test_resumed_run_equals_uninterrupted_run(tmp_path: Path) -> None:
    cfg = config(tmp_path / "a", optim={"warmup_steps": 2, "epochs": 3}, run={"save_every": 0})
    straight = Trainer(cfg)
    straight.train(show_progress=False)
    want = trainable(straight.encoder)

    cfg_b = config(tmp_path / "b", optim={"warmup_steps": 2, "epochs": 3})
    first = Trainer(cfg_b)
    assert first.train(show_progress=False, stop_after=5) is None  # stopped mid-epoch (6 batches per epoch)
    resumed = Trainer(cfg_b)  # a fresh process would start like this
    model = resumed.train(show_progress=False)
    got = trainable(resumed.encoder)
    assert model is not None and set(got) == set(want)
    for n in want:
        assert torch.equal(got[n], want[n]), n
    logged = [json.loads(x)["step"] for x in (Path(cfg_b.run.out) / "log.jsonl").read_text().splitlines()]
    assert logged == list(range(1, straight.total_steps + 1))
    run = json.loads((Path(cfg_b.run.out) / "run.json").read_text())
    assert run["data"]["train_sha256"] and run["git_commit"] and run["config"]["optim"]["epochs"] == 3


def test_save_latest_writes_the_checkpoints_model_and_training_still_resumes(tmp_path: Path) -> None:
    """A run stopped early (the machine's time is up) can still be evaluated: --save-latest writes the latest
    checkpoint's weights as OUT/model, and running the command again resumes the training as before."""
    cfg = config(tmp_path, optim={"warmup_steps": 2, "epochs": 3})
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        Trainer(cfg).save_latest()
    stopped = Trainer(cfg)
    assert stopped.train(show_progress=False, stop_after=3) is None
    texts = ["a query about cells", "another document on proteins and genes"]
    want = stopped.encoder.encode(texts)
    folder, step = Trainer(cfg).save_latest()
    assert step == 3 and folder == Path(cfg.run.out) / "model"
    got = SparseEncoder.from_pretrained(folder).encode(texts)
    for i in range(len(texts)):
        (ta, wa), (tb, wb) = want.sparse.row(i), got.sparse.row(i)
        assert ta.tolist() == tb.tolist()
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    assert Trainer(cfg).train(show_progress=False) is not None  # resumes from step 3 to the end
    steps = [json.loads(x)["step"] for x in (Path(cfg.run.out) / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[0] == 1


def test_portable_weights_give_the_model_and_a_warm_start(tmp_path: Path) -> None:
    """A checkpoint whose state.pt did not come back (only weights.safetensors and meta.json, what a lent machine's
    poll carries off) still gives the same model, and training starts again at its step and learning rate."""
    cfg = config(tmp_path, optim={"warmup_steps": 2, "epochs": 3})
    stopped = Trainer(cfg)
    assert stopped.train(show_progress=False, stop_after=4) is None
    lr = stopped.optimizer.param_groups[0]["lr"]
    texts = ["a query about cells", "another document on proteins and genes"]
    want = stopped.encoder.encode(texts)
    (last,) = list((Path(cfg.run.out) / "checkpoints").glob("step-*"))
    (last / "state.pt").unlink()
    folder, step = Trainer(cfg).save_latest()
    assert step == 4
    got = SparseEncoder.from_pretrained(folder).encode(texts)
    for i in range(len(texts)):
        (ta, wa), (tb, wb) = want.sparse.row(i), got.sparse.row(i)
        assert ta.tolist() == tb.tolist()
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    at_step_4 = trainable(stopped.encoder)
    warm = Trainer(cfg)
    assert warm.train(show_progress=False, stop_after=1) is None
    log = [json.loads(x) for x in (Path(cfg.run.out) / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5]  # went on from step 4
    moved = trainable(warm.encoder)
    assert any(not torch.equal(moved[n], at_step_4[n]) for n in at_step_4)
    straight_cfg = config(tmp_path / "straight", optim={"warmup_steps": 2, "epochs": 3})
    assert Trainer(straight_cfg).train(show_progress=False, stop_after=5) is None
    straight = [json.loads(x) for x in (Path(straight_cfg.run.out) / "log.jsonl").read_text().splitlines()]
    assert log[-1]["lr"] == pytest.approx(straight[4]["lr"])  # the schedule went on where it was
    assert lr == pytest.approx(straight[3]["lr"])


def test_lookup_joint_trains_the_documents_against_inference_free_queries(tmp_path: Path) -> None:
    """[model] queries = "lookup-joint" (OpenSearch's doc-only recipe): the encoder sees documents only, queries
    are relu(w_t) of their distinct tokens with w trained beside it from an IDF start. The saved model is an
    inference-free folder with its document encoder inside; a run stopped and resumed ends where a straight one
    does, lookup weights included."""
    from lsr.inference_free import InferenceFreeEncoder

    sections = {"model": {"queries": "lookup-joint", "lookup_lr": 0.05}, "optim": {"warmup_steps": 2}}
    straight = Trainer(config(tmp_path / "a", **sections))
    start = straight.query_lookup.detach().clone()
    folder = straight.train(show_progress=False)
    assert not torch.equal(start, straight.query_lookup.detach())
    cfg_b = config(tmp_path / "b", **sections)
    assert Trainer(cfg_b).train(show_progress=False, stop_after=3) is None
    resumed = Trainer(cfg_b)
    resumed.train(show_progress=False)
    assert torch.equal(resumed.query_lookup.detach(), straight.query_lookup.detach())
    want = trainable(straight.encoder)
    assert all(torch.equal(want[n], t) for n, t in trainable(resumed.encoder).items())

    model = SparseEncoder.from_pretrained(folder)
    assert isinstance(model, InferenceFreeEncoder) and (folder / "document").is_dir()
    query = "cells divide when genes say so"
    toks = np.unique(model.token_ids([query])[0])
    w = np.maximum(straight.query_lookup.detach().numpy(), 0)
    got_t, got_w = model.encode([query], "query").sparse.row(0)
    keep = w[toks] > 0
    assert got_t.tolist() == toks[keep].tolist()
    np.testing.assert_allclose(got_w, w[toks][keep], rtol=1e-6)
    docs = ["proteins fold in cells", "a gene is read into RNA and then into protein"]
    a, b = straight.encoder.encode(docs), model.encode(docs, "document")
    for i in range(len(docs)):
        assert a.sparse.row(i)[0].tolist() == b.sparse.row(i)[0].tolist()
        np.testing.assert_allclose(a.sparse.row(i)[1], b.sparse.row(i)[1], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="sparse queries only"):
        config(tmp_path / "c", model={"queries": "lookup-joint", "settings": {"dense_pooling": "mean"}},
               loss={"dense": 1.0})  # fmt: skip


def test_checkpoint_of_another_model_is_refused(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    Trainer(cfg).train(show_progress=False, stop_after=1)
    other = TrainConfig.from_dict({**cfg.to_dict(), "model": {"base": save_tiny(tmp_path / "llama", "causal")}})
    with pytest.raises(ValueError, match="checkpoint was made for"):
        Trainer(other).train(show_progress=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_gpu_option_on_a_cpu_machine(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no CUDA GPU"):
        Trainer(config(tmp_path, run={"device": "cuda"}))


def test_saved_float16_model_loads_and_encodes(tmp_path: Path) -> None:
    cfg = config(tmp_path, optim={"max_steps": 2}, run={"save_dtype": "float16"})
    tr = Trainer(cfg)
    before = {n: t.clone() for n, t in tr.encoder.state_dict().items()}
    folder = tr.train(show_progress=False)
    loaded = SparseEncoder.from_pretrained(folder)
    assert loaded.dtype == torch.float32
    # saving in float16 leaves the model in memory as it was
    llama = SparseEncoder.from_pretrained(save_tiny(tmp_path / "llama", "causal"))
    state = {n: t.clone() for n, t in llama.state_dict().items()}
    buffers = {n: b.clone() for n, b in llama.named_buffers()}
    assert buffers, "a model with float buffers (rotary frequencies)"
    llama.save(tmp_path / "llama16", dtype="float16")
    assert all(torch.equal(state[n], t) and t.dtype == state[n].dtype for n, t in llama.state_dict().items())
    assert all(torch.equal(buffers[n], b) and b.dtype == buffers[n].dtype for n, b in llama.named_buffers())
    assert set(before) == set(tr.encoder.state_dict())
    for n, p in tr.encoder.state_dict().items():
        assert torch.equal(loaded.state_dict()[n], p.to(torch.float16).to(torch.float32)), n
    assert loaded.encode_queries(["w1 w2 w3"]).nnz > 0


def test_causal_lora_with_dense_head_and_prosper_options(tmp_path: Path) -> None:
    base = save_tiny(
        tmp_path / "llama", "causal", echo=True, literal_residual=True, focus_window=True, focus_k_document=8,
        dense_pooling="mean",
    )  # fmt: skip
    cfg = config(tmp_path, model={"base": base, "lora": True, "lora_r": 4, "gradient_checkpointing": True})
    tr = Trainer(cfg)
    names = set(trainable(tr.encoder))
    assert names and all("lora_" in n or n.startswith("residual.") for n in names)
    _, batch = next(tr.data.batches(0, 0, 0, 4, 4, 9))
    _, stats = tr.loss(batch, 0)
    assert {"dense_infonce", "dense_kl"} <= set(stats)
    assert stats["nnz_document"] <= 8
    folder = tr.train(show_progress=False)
    loaded = SparseEncoder.from_pretrained(folder)
    assert loaded.config.lora and loaded.encode(["w1 w2"], side="document").dense.shape == (1, 32)


def test_disco_teacher_must_share_the_vocabulary(tmp_path: Path) -> None:
    teacher = save_tiny(tmp_path / "teacher", seed=3)
    tr = Trainer(config(tmp_path, loss={"disco": 1.0, "disco_teacher": teacher}))
    _, batch = next(tr.data.batches(0, 0, 0, 4, 4, 9))
    _, stats = tr.loss(batch, 0)
    assert stats["disco"] > 0
    other = save_tiny(tmp_path / "other", "causal")
    with pytest.raises(ValueError, match="another vocabulary"):
        Trainer(config(tmp_path / "x", loss={"disco": 1.0, "disco_teacher": other}))


def test_sentence_transformers_layout_gives_the_same_vectors(tmp_path: Path) -> None:
    enc = SparseEncoder.from_pretrained(save_tiny(tmp_path / "base", pool_special_tokens=True))
    folder = enc.save_sentence_transformers(tmp_path / "st", dtype="float16")
    ours = SparseEncoder.from_pretrained(folder)  # the same folder, through our loader
    gap, nnz = largest_gap(ours, folder, ["w1 w2 w3", "w5 w5 w9 w12 w30", "w0"])
    assert nnz > 0 and gap < 1e-5
    # the weights were rounded to float16 once, and load in float32 on both sides
    for n, p in enc.backbone.lm.state_dict().items():
        assert torch.equal(ours.backbone.lm.state_dict()[n], p.half().float()), n
    with pytest.raises(ValueError, match="layout holds"):
        SparseEncoder.from_pretrained(save_tiny(tmp_path / "plain")).save_sentence_transformers(tmp_path / "x")


def test_cli_train_end_to_end_and_bad_input(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.app import app

    base = save_tiny(tmp_path / "base")
    ts = toy_trainset(tmp_path / "set")
    cfg = tmp_path / "exp.toml"
    cfg.write_text(
        f'[model]\nbase = "{base}"\n[data]\ntrain = "{ts}"\nbatch_size = 4\ngroup_size = 3\n'
        f'[optim]\nmax_steps = 3\n[run]\nout = "{tmp_path / "run"}"\n'
    )
    runner = CliRunner()
    ok = runner.invoke(app, ["train", str(cfg), "--set", "loss.kl=0.5"])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "run" / "model" / "lsr_config.json").is_file()
    assert json.loads((tmp_path / "run" / "run.json").read_text())["config"]["loss"]["kl"] == 0.5
    bad = runner.invoke(app, ["train", str(cfg), "--set", "optim.lr_max=1"])
    assert bad.exit_code == 2 and "unknown key(s) ['lr_max'] in [optim]" in bad.output
    missing = runner.invoke(app, ["train", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 2 and "no such config file" in missing.output
    cfg.write_text(f'[model]\nbase = "no-such-model"\n[data]\ntrain = "{ts}"\n')
    unknown = runner.invoke(app, ["train", str(cfg)])
    assert unknown.exit_code == 2 and "no-such-model" in unknown.output
    cfg.write_text(f'[data]\ntrain = "{tmp_path / "nowhere"}"\n')
    no_data = runner.invoke(app, ["train", str(cfg)])
    assert no_data.exit_code == 2 and "lsr trainset" in no_data.output
    # the module entry point is the same job
    from lsr.train.__main__ import main

    assert main([str(cfg)]) == 2


def test_idf_start_of_the_literal_residual(tmp_path: Path) -> None:
    """residual_init = "idf": b = -scale * idf / max idf, with df counted naively over the training documents; a
    fresh encoder then lifts a text's own tokens by scale * (idf - min idf) / max idf above its LM-head weights."""
    base = save_tiny(tmp_path / "llama", "causal", echo=True, literal_residual=True)
    scale = 2.5
    tr = Trainer(config(tmp_path, model={"base": base, "lora": True, "lora_r": 4, "residual_init": "idf",
                                         "residual_idf_scale": scale}))  # fmt: skip
    enc = tr.encoder
    texts = list(tr.data.docs.values())
    df = np.zeros(enc.vocab_size)
    for t in texts:
        for v in set(enc.layout.tokenize([t])[0]):
            df[v] += 1
    idf = np.log((len(texts) + 1) / (df + 1))
    want = -scale * idf / idf.max()
    np.testing.assert_allclose(enc.residual.bias.detach().numpy(), want, rtol=1e-6, atol=1e-6)

    plain = SparseEncoder.from_pretrained(base)  # the same backbone with a zero residual
    text = texts[0]
    batch = enc.layout.batch(enc.layout.tokenize([text]), enc.config.max_length)
    enc.eval()
    with torch.no_grad():
        lifted, _ = enc(batch)
        before, _ = plain(batch)
    own = sorted(set(enc.layout.tokenize([text])[0]))
    lift = (lifted - before)[0].numpy()
    np.testing.assert_allclose(lift[own], want.max() - want[own], rtol=1e-4, atol=1e-4)
    others = np.setdiff1d(np.arange(enc.vocab_size), own)
    assert np.abs(lift[others]).max() == 0.0

    with pytest.raises(ValueError, match="literal_residual"):
        Trainer(config(tmp_path, model={"base": save_tiny(tmp_path / "plain", "causal"), "residual_init": "idf"}))
    with pytest.raises(ValueError, match="residual_init"):
        config(tmp_path, model={"residual_init": "bm25"})


def test_head_bias_start_is_trained_and_saved(tmp_path: Path) -> None:
    base = save_tiny(tmp_path / "llama", "causal", echo=True, head_bias=True)
    cfg = config(tmp_path, model={"base": base, "lora": True, "lora_r": 4, "head_bias_start": -0.25})
    tr = Trainer(cfg)
    assert torch.equal(tr.encoder.backbone.head_bias.detach(), torch.full((tr.encoder.vocab_size,), -0.25))
    assert "backbone.head_bias" in trainable(tr.encoder)
    folder = tr.train(show_progress=False)
    trained = tr.encoder.backbone.head_bias.detach()
    assert not torch.equal(trained, torch.full_like(trained, -0.25))  # it learned
    back = SparseEncoder.from_pretrained(folder)
    assert torch.equal(back.backbone.head_bias.detach(), trained)
    with pytest.raises(ValueError, match="head_bias"):
        Trainer(config(tmp_path, model={"base": save_tiny(tmp_path / "plain", "causal"), "head_bias_start": -1.0}))


def test_a_non_finite_loss_stops_training_at_its_step_without_a_checkpoint_of_it(tmp_path: Path) -> None:
    """Losses stay on the device between log steps (no wait for the GPU each step); a non-finite one is found at
    the next log step or checkpoint, and reported with the step it came from."""
    from lsr.train.trainer import _check_finite

    seen = [(1, torch.tensor(1.0)), (2, torch.tensor(float("nan"))), (3, torch.tensor(float("inf")))]
    with pytest.raises(FloatingPointError, match="loss is nan at step 2"):
        _check_finite(seen)
    assert seen == []
    fine = [(4, torch.tensor(0.5))]
    _check_finite(fine)
    assert fine == []
    cfg = config(tmp_path, optim={"lr": 1e30, "epochs": 3, "warmup_steps": 0}, run={"log_every": 4, "save_every": 4})
    with pytest.raises(FloatingPointError, match=r"loss is (nan|inf|-inf) at step \d+; lower \[optim\] lr") as e:
        Trainer(cfg).train(show_progress=False)
    bad = int(str(e.value).split(" at step ")[1].split(";")[0])
    ckpts = Path(cfg.run.out) / "checkpoints"
    steps = [int(c.name.split("-")[1]) for c in ckpts.iterdir()] if ckpts.is_dir() else []
    assert all(s <= bad for s in steps), (steps, bad)  # weights after the bad step's update were never saved
    logged = [json.loads(x) for x in (Path(cfg.run.out) / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in logged) and all(r["step"] <= bad for r in logged)
