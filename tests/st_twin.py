"""Our encoder's vectors against sentence-transformers' on the same folder (its own loader and pooling)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def largest_gap(ours, folder: Path, texts: list[str]) -> tuple[float, int]:  # noqa: ANN001
    """(largest weight difference, our non-zeros) between our document vectors and sentence-transformers'
    SparseEncoder(folder) on ``texts``; also checks it loads the weights in float32."""
    import torch
    from sentence_transformers import SparseEncoder as STSparseEncoder

    theirs = STSparseEncoder(str(folder), device="cpu")
    assert next(theirs.parameters()).dtype == torch.float32
    got = ours.encode_documents(texts)
    want = theirs.encode_document(texts, convert_to_tensor=True).to_dense().numpy()
    dense = np.zeros_like(want)
    for i in range(len(texts)):
        idx, val = got.row(i)
        dense[i, idx] = val
    return float(np.abs(dense - want).max()), got.nnz
