"""Training inference-free queries (lsr.inference_free) against a frozen document encoder.

``[model] queries = "lookup"`` in a training config: ``base`` is the trained document encoder, kept frozen. Its
vectors for every document of the training set are computed once; then only the query side is trained, with
the same ranking losses and teacher ensemble as the full model (``[loss]``):

    sparse  w (V,): q_t = relu(w_t) for the query's distinct tokens, initialised to the IDF of the tokens in the
            training documents (OpenSearch's doc-only models start from IDF, arXiv:2411.04403)
    dense   P (H, H), identity at the start: q = normalise(P mean_t E_t) with the backbone's input embeddings E,
            when the document encoder has a dense head (LightRetriever, arXiv:2505.12260, averages token embeddings)

It takes seconds to minutes on a CPU, so it writes no checkpoints: a run starts over.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import TrainConfig
from .data import TrainSet

logger = logging.getLogger(__name__)


def idf(token_ids: list[list[int]], vocab_size: int) -> np.ndarray:
    """log((N + 1) / (df + 1)) over N tokenised texts; a token in none of them gets the largest value."""
    df = np.zeros(vocab_size, dtype=np.float64)
    for toks in token_ids:
        df[np.unique(np.asarray(toks, dtype=np.int64))] += 1
    return np.log((len(token_ids) + 1) / (df + 1)).astype(np.float32)


def document_idf(encoder: Any, texts: list[str]) -> np.ndarray:
    """``idf`` of the encoder's own tokens over ``texts`` (the training documents): where inference-free query
    weights and PROSPER's literal residual start."""
    return idf(encoder.layout.tokenize(texts), encoder.vocab_size)


def query_matrix(token_ids: list[list[int]], weight: torch.Tensor) -> torch.Tensor:
    """(B, V): relu(w_t) at each query's distinct tokens; differentiable in ``weight``."""
    rows = [torch.unique(torch.as_tensor(t, dtype=torch.long)) for t in token_ids]
    r = torch.cat([torch.full((len(t),), i, dtype=torch.long) for i, t in enumerate(rows)]).to(weight.device)
    c = (torch.cat(rows) if rows else torch.zeros(0, dtype=torch.long)).to(weight.device)
    q = torch.zeros(len(rows), weight.shape[0], dtype=weight.dtype, device=weight.device)
    return q.index_put((r, c), torch.relu(weight[c]))


def mean_embeddings(token_ids: list[list[int]], emb: torch.Tensor) -> torch.Tensor:
    """(B, H): each query's mean input embedding (zeros for a text without tokens)."""
    out = torch.zeros(len(token_ids), emb.shape[1], dtype=emb.dtype)
    for i, t in enumerate(token_ids):
        if t:
            out[i] = emb[torch.as_tensor(t, dtype=torch.long)].mean(dim=0)
    return out


class LookupTrainer:
    def __init__(self, cfg: TrainConfig) -> None:
        from lsr import SparseEncoder

        from .trainer import check_device, seed_everything

        if cfg.model.queries != "lookup":
            raise ValueError("LookupTrainer trains [model] queries = 'lookup'")
        check_device(cfg.run.device)
        seed_everything(cfg.run.seed)
        self.cfg = cfg
        self.out = Path(cfg.run.out)
        self.data = TrainSet.load(cfg.data.train, cfg.data.sources)
        self.encoder = SparseEncoder.from_pretrained(cfg.model.base, device=cfg.run.device)
        self.dense = bool(self.encoder.dense_dim)

    def train(
        self, show_progress: bool = True, vectors: tuple[list[str], Any, np.ndarray | None] | None = None
    ) -> Path:
        """Train and save the lookup model. ``vectors`` (doc ids, a SciPy CSR matrix of their sparse vectors, dense
        rows or None) are the frozen encoder's vectors computed elsewhere, say on a GPU machine, for at least the
        training documents; without them every training document is encoded here first."""
        from lsr.inference_free import InferenceFreeEncoder, LookupConfig

        from .cached import fit
        from .trainer import dense_ranking_parts, ranking_parts

        cfg, enc, lo = self.cfg, self.encoder, self.cfg.loss
        t0 = time.perf_counter()
        texts = [self.data.docs[d] for d in sorted(self.data.docs)]
        if vectors is None:
            doc_ids = sorted(self.data.docs)
            encoded = enc.encode(texts, "document", batch_size=32, show_progress=show_progress)
            D, dense_rows = encoded.sparse.to_scipy(enc.vocab_size), encoded.dense
        else:
            doc_ids, D, dense_rows = vectors
            missing = set(self.data.docs) - set(doc_ids)
            if missing:
                raise ValueError(f"vectors lack {len(missing)} training documents, e.g. {sorted(missing)[:3]}")
            if D.shape != (len(doc_ids), enc.vocab_size) or (self.dense and dense_rows is None):
                raise ValueError(f"vectors must be {len(doc_ids)} x {enc.vocab_size} (and dense rows for a dense head)")
        row_of = {d: i for i, d in enumerate(doc_ids)}
        encode_s = time.perf_counter() - t0
        weight = torch.nn.Parameter(torch.from_numpy(document_idf(enc, texts)))
        params = [weight]
        proj = emb = None
        if self.dense:
            H = enc.backbone.hidden_size
            proj = torch.nn.Parameter(torch.eye(H))
            emb = enc.backbone.lm.get_input_embeddings().weight.detach().float().cpu()
            params.append(proj)

        def step_loss(batch, target):  # noqa: ANN001, ANN202
            q_tok = enc.layout.tokenize(batch.queries)
            rows = [row_of[d] for d in batch.doc_ids]
            d = torch.from_numpy(D[rows].toarray())
            G = batch.group_size
            parts = ranking_parts(query_matrix(q_tok, weight) @ d.T, G, target, lo, lo.infonce_temperature,
                                  lo.kl_temperature)  # fmt: skip
            if self.dense and lo.dense:
                qd = torch.nn.functional.normalize(mean_embeddings(q_tok, emb) @ proj.T, dim=-1)
                dd = torch.from_numpy(np.asarray(dense_rows[rows], dtype=np.float32))
                parts.update(dense_ranking_parts(qd @ dd.T, G, target, lo))
            return parts

        info = {"documents": len(texts), "encode_seconds": encode_s}
        fit(cfg, self.data, params, step_loss, info, "train queries", show_progress)
        config = LookupConfig(cfg.model.base, enc.vocab_size, enc.vocab_hash, dense=self.dense)
        model = InferenceFreeEncoder(
            enc, config, weight.detach().numpy(), None if proj is None else proj.detach().numpy()
        )
        return model.save(self.out / "model")
