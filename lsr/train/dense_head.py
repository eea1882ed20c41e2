"""Training a dense head beside a frozen sparse encoder, on its pooled hidden states computed once.

``[model] dense_head_only = true`` in a training config: ``base`` is a trained sparse encoder without a dense
head, kept frozen (its sparse vectors do not change). It gets one (``SparseEncoder.add_dense_head``): the mean
(``settings.dense_pooling``) of block ``settings.dense_layer``'s hidden states through an (H, H) projection P that
starts as the identity. Every training document and query is encoded once with P = I; then only P is trained,
with the ranking losses and teacher ensemble of ``[loss]`` on the dense scores (weighted by ``[loss] dense``, at
``dense_temperature``):

    q = normalise(P x_q),  d = normalise(P x_d),  score = q . d,  x = the pooled vector (normalised; P's
    output is normalised again, so normalise(P normalise(x)) = normalise(P x) and the cached rows serve)

The result is the encoder with its dense head (``OUT/model``): sparse and dense vectors from one forward pass,
a hybrid from one model. Why a frozen backbone: in the joint runs of benchmarks/ablate_llm.py (round 1), a dense
head on SmolLM2's last hidden states stayed near chance beside the literal residual, while block 28's mean ranks
well before any training (benchmarks/dense_head.py ``probe``).
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

# (ids or texts, (n, H) float32 rows): the identity head's vectors of documents (by id) or queries (by text)
Rows = tuple[list[str], np.ndarray]


class DenseHeadTrainer:
    def __init__(self, cfg: TrainConfig) -> None:
        from lsr import SparseEncoder

        from .trainer import check_device, seed_everything

        if not cfg.model.dense_head_only:
            raise ValueError("DenseHeadTrainer trains [model] dense_head_only = true")
        check_device(cfg.run.device)
        seed_everything(cfg.run.seed)
        self.cfg = cfg
        self.out = Path(cfg.run.out)
        self.data = TrainSet.load(cfg.data.train, cfg.data.sources)
        settings = dict(cfg.model.settings)
        pooling, layer = settings.pop("dense_pooling"), int(settings.pop("dense_layer", 0))
        self.encoder = SparseEncoder.from_pretrained(cfg.model.base, device=cfg.run.device, **settings)
        self.encoder.add_dense_head(pooling, layer)

    def _rows(self, keys: list[str], given: Rows | None, side: str, texts: list[str], show_progress: bool) -> Any:
        """(n, H) rows for ``keys``: looked up in ``given``, else encoded here from ``texts``."""
        if given is None:
            return self.encoder.encode(texts, side, batch_size=32, show_progress=show_progress).dense
        names, rows = given
        H = self.encoder.backbone.hidden_size
        if rows.ndim != 2 or rows.shape != (len(names), H) or not np.isfinite(rows).all():
            raise ValueError(f"given {side} rows must be {len(names)} x {H} finite numbers, not {rows.shape}")
        at = {n: i for i, n in enumerate(names)}
        missing = [k for k in keys if k not in at]
        if missing:
            raise ValueError(f"given {side} rows lack {len(missing)} training {side}s, e.g. {missing[:3]}")
        return np.asarray(rows[[at[k] for k in keys]], dtype=np.float32)

    def train(self, show_progress: bool = True, documents: Rows | None = None, queries: Rows | None = None) -> Path:
        """Train P and save the encoder with its dense head as OUT/model. ``documents`` (ids, rows) and ``queries``
        (texts, rows) are the identity head's vectors computed elsewhere (say on a GPU machine) for at least the
        training documents and queries; whichever is missing is encoded here first."""
        from .cached import fit
        from .trainer import dense_ranking_parts

        cfg, enc, lo = self.cfg, self.encoder, self.cfg.loss
        t0 = time.perf_counter()
        doc_ids = sorted(self.data.docs)
        D = self._rows(doc_ids, documents, "document", [self.data.docs[d] for d in doc_ids], show_progress)
        q_texts = sorted({r["query"] for r in self.data.rows})
        Q = self._rows(q_texts, queries, "query", q_texts, show_progress)
        doc_row, query_row = {d: i for i, d in enumerate(doc_ids)}, {t: i for i, t in enumerate(q_texts)}
        D, Q = torch.from_numpy(np.ascontiguousarray(D)), torch.from_numpy(np.ascontiguousarray(Q))
        encode_s = time.perf_counter() - t0
        H = enc.backbone.hidden_size
        proj = torch.nn.Parameter(torch.eye(H))

        def step_loss(batch, target):  # noqa: ANN001, ANN202
            norm = torch.nn.functional.normalize
            q = norm(Q[[query_row[t] for t in batch.queries]] @ proj.T, dim=-1)
            d = norm(D[[doc_row[x] for x in batch.doc_ids]] @ proj.T, dim=-1)
            return dense_ranking_parts(q @ d.T, batch.group_size, target, lo)

        info = {"documents": len(doc_ids), "encode_seconds": encode_s, "dense_layer": enc.config.dense_layer}
        fit(cfg, self.data, [proj], step_loss, info, "train dense head", show_progress)
        with torch.no_grad():
            enc.dense_proj.weight.copy_(proj.detach().to(enc.dense_proj.weight))
        return enc.save(self.out / "model", dtype=cfg.run.save_dtype)
