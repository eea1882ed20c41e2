"""Encoding throughput: our SparseEncoder beside sentence-transformers' SparseEncoder, same model and batch size.

    python -m benchmarks.bench_encode --device cpu --n 5183 [--st-n 1024] [--models splade-tiny,smollm2-135m]

Rows (documents from BEIR scifact, title + text, max_length tokens):
- ours            our default SPLADE pooling (special tokens excluded); on CPU the native int8-screened head
- ours[st-pool]   pool_special_tokens=True, i.e. exactly the vectors sentence-transformers computes (checked)
- ours[full-dim screen]  CPU only: the native head screening on all dimensions (no fitted centre and basis)
- ours[1 worker]  CPU only: one batch at a time on all of torch's threads (the default runs one batch per thread)
- ours[torch]     CPU only: the torch head over token chunks (the fast head switched off)
- ours[bfloat16], ours[float16]   GPU only: half-precision weights; max|diff| is against our float32 vectors
- st              sentence-transformers SparseEncoder(MLMTransformer, SpladePooling('max'))
- smollm2 rows    our decoder-only backbone, with and without echo; on the GPU also in bfloat16 and float16,
                  max|diff| against our float32 vectors. Beside them st on the same causal LM (plain pooling over
                  every position's LM-head logits; it has no echo mode), compared with our plain fp32 vectors.
Every engine is warmed up on 64 documents first, then timed --repeats times (the median is reported). On the
CPU the rows over the same documents run interleaved (run 1 of each, then run 2 of each, ...): the machine is
shared and drifts, and the ratios between rows are what the ablations are for: the last column is the first
row's speed over each row's, the median over rounds of their paired timings. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import platform
import resource
import time
from pathlib import Path

from benchmarks.report import grid

logger = logging.getLogger(__name__)

HALF = ("bfloat16", "float16")  # GPU rows in half precision, compared with our float32 vectors


def scifact_texts(data: Path, n: int) -> list[str]:
    with gzip.open(data / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        docs = [json.loads(line) for line in f]
    return [f"{d.get('title') or ''} {d.get('text') or ''}".strip() for d in docs][:n]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Ours:
    """Our SparseEncoder as a benchmark engine; ablations switch off one speed-up each."""

    def __init__(  # noqa: PLR0913
        self,
        model: str,
        device: str,
        batch_size: int,
        max_length: int,
        fast: bool = True,
        workers: int | None = None,
        full_screen: bool = False,
        **cfg,
    ) -> None:
        from lsr import SparseEncoder

        self.enc = enc = SparseEncoder.from_pretrained(model, device=device, max_length=max_length, **cfg)
        enc.use_fast_head = enc.use_fast_head and fast
        enc.workers = workers
        if full_screen:  # never fit a centre and basis: screen on every dimension
            enc._fast_head.calibration_tokens = 2**62
        self.batch_size, self.device = batch_size, device

    def encode(self, texts: list[str]):  # noqa: ANN201
        return self.enc.encode_documents(texts, batch_size=self.batch_size)

    def start(self) -> None:
        self.enc.stats["truncated"] = 0  # count the timed runs only

    def facts(self, out, n: int, repeats: int) -> dict:  # noqa: ANN001
        return {
            "avg_nnz": out.nnz / max(1, n),
            "truncated": self.enc.stats["truncated"] // repeats,
            "fast_head": bool(self.enc.use_fast_head and self.device == "cpu"),
            "workers": self.enc.cpu_workers(),
        }


class ST:
    """sentence-transformers' SparseEncoder with SpladePooling('max'); outputs their sparse tensor.

    On a masked LM its MLMTransformer. On a causal LM its Transformer in "text-generation" mode with the logits
    of every position kept (logits_to_keep=0; its default keeps the last one only) and handed to SpladePooling
    as token_embeddings: Mistral-SPLADE's plain pooling, which is our causal default without echo. It pads on
    the left, we pad on the right; RoPE sees only relative positions, so the vectors agree (checked)."""

    def __init__(  # noqa: PLR0913
        self, model: str, device: str, batch_size: int, max_length: int, causal: bool = False, dtype: str = "float32"
    ) -> None:
        import torch
        from sentence_transformers import SparseEncoder as STSparseEncoder

        from lsr.models import resolve

        try:
            from sentence_transformers.sparse_encoder.modules import MLMTransformer, SpladePooling
        except ImportError:  # sentence-transformers < 6.1
            from sentence_transformers.sparse_encoder.models import MLMTransformer, SpladePooling

        src = resolve(model)
        if causal:  # its Transformer takes a task and processing_kwargs from 6.1 on
            from sentence_transformers.sparse_encoder.modules import Transformer

            gguf = {"gguf_file": src.gguf_file} if src.gguf_file else {}
            body = Transformer(
                str(src.path),
                transformer_task="text-generation",
                modality_config={"text": {"method": "forward", "method_output_name": "logits"}},
                module_output_name="token_embeddings",
                processing_kwargs={"text": {"logits_to_keep": 0}},
                model_kwargs={**gguf, "dtype": getattr(torch, dtype)},
                processor_kwargs=dict(gguf),
                config_kwargs=dict(gguf),
                max_seq_length=max_length,
            )
            if body.tokenizer.pad_token is None:  # as our Layout pads: with EOS
                body.tokenizer.pad_token = body.tokenizer.eos_token
        else:
            body = MLMTransformer(str(src.path), max_seq_length=max_length, model_args={"dtype": getattr(torch, dtype)})
        self.model = STSparseEncoder(modules=[body, SpladePooling(pooling_strategy="max")], device=device)
        self.batch_size = batch_size

    def encode(self, texts: list[str]):  # noqa: ANN201
        return self.model.encode_document(texts, batch_size=self.batch_size, convert_to_sparse_tensor=True)

    def start(self) -> None:
        pass

    def facts(self, out, n: int, repeats: int) -> dict:  # noqa: ANN001
        return {"avg_nnz": out.coalesce().values().numel() / max(1, n), "truncated": None}

    @staticmethod
    def as_batch(out):  # noqa: ANN001, ANN205
        """Their (n, V) sparse tensor as our CSR batch, for compare_batches (done outside the timed runs)."""
        import numpy as np

        from indexer import SparseBatch

        emb = out.coalesce().cpu()  # row-major order
        rows, cols = emb.indices().numpy()
        indptr = np.zeros(emb.shape[0] + 1, dtype=np.uint64)
        indptr[1:] = np.cumsum(np.bincount(rows, minlength=emb.shape[0]))
        return SparseBatch(indptr, cols.astype(np.uint32), emb.values().float().numpy())


def merged_backbone(folder: Path, out: Path) -> Path:
    """A trained LLM encoder's backbone with its LoRA adapters merged in, saved as a plain Hugging Face causal LM
    (with its tokenizer) in ``out``: the same weights for sentence-transformers, which knows no adapters, echo,
    residual or focusing window."""
    from lsr import SparseEncoder

    enc = SparseEncoder.from_pretrained(folder)
    lm = enc.backbone.lm
    for name, module in list(lm.named_modules()):
        if hasattr(module, "merge") and hasattr(module, "base_layer"):  # a peft LoRA layer
            module.merge()
            parent, _, child = name.rpartition(".")
            setattr(lm.get_submodule(parent) if parent else lm, child, module.base_layer)
    # the GGUF base was dequantised on load: what is saved is plain float32 weights
    lm.hf_quantizer = None
    lm.is_quantized = False
    if hasattr(lm.config, "quantization_config"):
        del lm.config.quantization_config
    lm.save_pretrained(out)
    enc.tokenizer.save_pretrained(out)
    return out


def measure(engines: list[tuple], device: str, repeats: int) -> list[tuple[dict, object]]:
    """(row, last output) per (engine, texts): each warmed up on 64 texts, then timed ``repeats`` times with
    the engines' runs interleaved (run 1 of each, run 2 of each, ...), so that the shared machine's drift
    falls on all of them alike. The median is reported. On CUDA pass one engine at a time: peak memory is
    reset per call."""
    import statistics

    import torch

    cuda = device.startswith("cuda")
    for engine, texts in engines:
        engine.encode(texts[:64])
        engine.start()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    runs: list[list[float]] = [[] for _ in engines]
    outs: list = [None] * len(engines)
    for _ in range(repeats):
        for i, (engine, texts) in enumerate(engines):
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            outs[i] = engine.encode(texts)
            if cuda:
                torch.cuda.synchronize()
            runs[i].append(time.perf_counter() - t0)
    result = []
    for (engine, texts), r, out in zip(engines, runs, outs):
        dt = statistics.median(r)
        row = {"docs_per_s": len(texts) / dt, "seconds": dt, "runs_s": r}
        if len(engines) > 1 and len(texts) == len(engines[0][1]):
            # the first engine's speed over this one's, run by run: the drift cancels within a round
            row["first_speedup_paired"] = statistics.median(a / b for a, b in zip(r, runs[0]))
        row["peak_device_mb"] = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
        result.append(({**row, **engine.facts(out, len(texts), repeats)}, out))
    return result


def compare_batches(a, b, chunk: int = 256) -> dict:  # noqa: ANN001
    """Largest weight difference over the union of supports, and support disagreements beyond 1e-4, between
    two CSR batches of the same texts (row chunks densified: vectors of 49k non-zeros stay fast); also the
    median and 99th percentile over texts of each text's largest difference."""
    import numpy as np

    vocab = 1 + int(max(a.indices.max(initial=0), b.indices.max(initial=0)))
    per_text, mismatched = [], 0
    for lo in range(0, a.num_rows, chunk):
        hi = min(lo + chunk, a.num_rows)
        dense = []
        for batch in (a, b):
            m = np.zeros((hi - lo, vocab), dtype=np.float64)
            s, e = int(batch.indptr[lo]), int(batch.indptr[hi])
            rows = np.repeat(np.arange(hi - lo), np.diff(batch.indptr[lo : hi + 1]).astype(np.int64))
            m[rows, batch.indices[s:e].astype(np.int64)] = batch.values[s:e]
            dense.append(m)
        d = np.abs(dense[0] - dense[1])
        per_text.append(d.max(axis=1, initial=0.0))
        mismatched += int((((dense[0] != 0) != (dense[1] != 0)) & (d > 1e-4)).sum())
    per_text = np.concatenate(per_text) if per_text else np.zeros(1)
    return {
        "max_abs_diff": float(per_text.max()),
        "support_mismatches": mismatched,
        "text_max_diff_p50": float(np.quantile(per_text, 0.5)),
        "text_max_diff_p99": float(np.quantile(per_text, 0.99)),
    }


def trained_rows(args: argparse.Namespace, texts: list[str], setting: tuple, rows: list[dict], add, one) -> None:  # noqa: ANN001, PLR0913
    """A trained encoder (echo, residual, focusing window, as trained) beside sentence-transformers on the same
    weights (LoRA merged into the base). st computes plain max pooling over every position's LM-head logits, so
    the vectors are compared with ours in that mode on the merged weights, in float32; the bf16 rows are the
    speed of each, and the last one is the trained encoder as it is served."""
    import tempfile

    name = args.trained.name if args.trained.name != "model" else args.trained.parent.name
    first = len(rows)
    with tempfile.TemporaryDirectory() as tmp:
        merged = merged_backbone(args.trained, Path(tmp) / "merged")
        plain = {"echo": False, "literal_residual": False, "focus_window": False, "dense_pooling": None}
        r, ours_plain = one(Ours(str(merged), *setting, **plain), texts)
        add("ours[trained, plain]", name, len(texts), r)
        r_st32, st_out = one(ST(str(merged), *setting, causal=True), texts)
        add("st[trained]", name, len(texts), r_st32, **compare_batches(ours_plain, ST.as_batch(st_out)))
        del st_out
        r, _ = one(Ours(str(merged), *setting, dtype="bfloat16", **plain), texts)
        add("ours[trained, plain, bfloat16]", name, len(texts), r)
        r_st, _ = one(ST(str(merged), *setting, causal=True, dtype="bfloat16"), texts)
        add("st[trained, bfloat16]", name, len(texts), r_st)
    r, _ = one(Ours(str(args.trained), *setting, dtype="bfloat16"), texts)
    add("ours[trained as served, bfloat16]", name, len(texts), r)
    for row in rows[first:]:
        row["x_vs_st"] = row["docs_per_s"] / r_st["docs_per_s"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/scifact")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n", type=int, default=5183, help="documents for our encoder")
    ap.add_argument("--st-n", type=int, default=None, help="documents for the slower rows (default: --n)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--models", default="splade-tiny,smollm2-135m")
    ap.add_argument("--llm-n", type=int, default=None, help="documents for the SmolLM2 rows (default: --st-n)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per row; the median is reported")
    ap.add_argument(
        "--trained", type=Path, default=None, help="a trained SmolLM2 encoder folder: its rows beside st on its weights"
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    import torch

    texts = scifact_texts(args.data, args.n)
    setting = (args.device, args.batch_size, args.max_length)
    n_slow = min(args.st_n or len(texts), len(texts))
    n_llm = min(args.llm_n or n_slow, len(texts))
    models = args.models.split(",")
    rows: list[dict] = []

    def add(engine: str, model: str, n: int, row: dict, **extra) -> None:  # noqa: ANN003
        rows.append({"engine": engine, "model": model, "docs": n, **row, **extra})
        logger.info("%s %s: %.1f docs/s", engine, model, row["docs_per_s"])

    def one(engine, texts: list[str]):  # noqa: ANN001, ANN202
        return measure([(engine, texts)], args.device, args.repeats)[0]

    if "splade-tiny" in models:
        slow = texts[:n_slow]
        if args.device == "cpu":  # ours and its ablations on all texts, interleaved
            names = ["ours", "ours[full-dim screen]", "ours[1 worker]"]
            variants = [{}, {"full_screen": True}, {"workers": 1}]
            got = measure([(Ours("splade-tiny", *setting, **v), texts) for v in variants], args.device, args.repeats)
            for name, (r, _) in zip(names, got):
                add(name, "splade-tiny", len(texts), r)
            # the slower rows on the first --st-n texts, interleaved
            engines = [
                (Ours("splade-tiny", *setting, pool_special_tokens=True), slow),
                (Ours("splade-tiny", *setting, fast=False), slow),
                (ST("splade-tiny", *setting), slow),
            ]
            (r_pool, ours_st), (r_torch, _), (r_st, st_out) = measure(engines, args.device, args.repeats)
            add("ours[st-pool]", "splade-tiny", n_slow, r_pool)
            add("ours[torch]", "splade-tiny", n_slow, r_torch)
        else:
            r, ours_fp32 = one(Ours("splade-tiny", *setting), texts)
            add("ours", "splade-tiny", len(texts), r)
            for dtype in HALF:  # half precision, compared with our float32 vectors
                r, half = one(Ours("splade-tiny", *setting, dtype=dtype), texts)
                add(f"ours[{dtype}]", "splade-tiny", len(texts), r, **compare_batches(half, ours_fp32))
            r, ours_st = one(Ours("splade-tiny", *setting, pool_special_tokens=True), slow)
            add("ours[st-pool]", "splade-tiny", n_slow, r)
            r_st, st_out = one(ST("splade-tiny", *setting), slow)
        add("st", "splade-tiny", n_slow, r_st, **compare_batches(ours_st, ST.as_batch(st_out)))
        st_speed = r_st["docs_per_s"]
        for row in rows:
            row["x_vs_st"] = row["docs_per_s"] / st_speed
    if "smollm2-135m" in models:
        llm_texts = texts[:n_llm]
        first = len(rows)
        if args.device == "cpu":  # ours, ours[echo] and st interleaved
            engines = [(Ours("smollm2-135m", *setting, echo=echo), llm_texts) for echo in (False, True)]
            engines.append((ST("smollm2-135m", *setting, causal=True), llm_texts))
            (r, fp32), (r_echo, _), (r_st, st_out) = measure(engines, args.device, args.repeats)
            add("ours", "smollm2-135m", n_llm, r)
            add("ours[echo]", "smollm2-135m", n_llm, r_echo)
            st_batch = ST.as_batch(st_out)
        else:
            for echo in (False, True):
                name = "ours[echo]" if echo else "ours"
                r, out = one(Ours("smollm2-135m", *setting, echo=echo), llm_texts)
                add(name, "smollm2-135m", n_llm, r)
                if not echo:  # st right after the row its vectors are compared with
                    fp32 = out
                    r_st, st_out = one(ST("smollm2-135m", *setting, causal=True), llm_texts)
                    st_batch = ST.as_batch(st_out)  # off the GPU before the next rows' peak memory
                    del st_out
                for dtype in HALF:
                    r, half = one(Ours("smollm2-135m", *setting, echo=echo, dtype=dtype), llm_texts)
                    label = f"ours[echo, {dtype}]" if echo else f"ours[{dtype}]"
                    add(label, "smollm2-135m", n_llm, r, **compare_batches(half, out))
        add("st", "smollm2-135m", n_llm, r_st, **compare_batches(fp32, st_batch))
        for row in rows[first:]:
            row["x_vs_st"] = row["docs_per_s"] / r_st["docs_per_s"]

    if args.trained is not None:
        trained_rows(args, texts[:n_llm], setting, rows, add, one)

    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    meta = {
        "device": args.device,
        "device_name": device_name,
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "peak_rss_mb": peak_rss_mb(),
    }
    print(f"\nscifact documents, batch {args.batch_size}, max_length {args.max_length}, {args.device} ({device_name})")
    print(
        grid(
            [
                "engine",
                "model",
                "docs",
                "docs/s",
                "x vs st",
                "avg nnz",
                "peak dev MB",
                "max|diff| (st: vs st, half: vs fp32)",
                "per-text max|diff| p50 / p99",
                "its group's first row's speed-up over it (paired runs)",
            ],
            [
                [
                    r["engine"],
                    r["model"],
                    r["docs"],
                    f"{r['docs_per_s']:.1f}",
                    f"{r['x_vs_st']:.2f}" if "x_vs_st" in r else "",
                    f"{r['avg_nnz']:.1f}",
                    f"{r['peak_device_mb']:.0f}" if r.get("peak_device_mb") else "",
                    f"{r['max_abs_diff']:.2e} ({r['support_mismatches']} mism.)" if "max_abs_diff" in r else "",
                    f"{r['text_max_diff_p50']:.1e} / {r['text_max_diff_p99']:.1e}" if "text_max_diff_p50" in r else "",
                    f"{r['first_speedup_paired']:.3f}" if "first_speedup_paired" in r else "",
                ]
                for r in rows
            ],
        )
    )
    out = args.out or Path(__file__).parent / "results" / f"encode-{args.device.split(':')[0]}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
