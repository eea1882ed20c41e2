"""Host tensors to the device without making the host wait."""

from __future__ import annotations

import torch


def to_device(t: torch.Tensor, device: str | torch.device) -> torch.Tensor:
    """A host tensor on ``device``; to a GPU through pinned memory, asynchronously: a copy from pageable memory
    waits for every kernel queued before it, so a training step that copies its inputs that way can never run
    ahead of the GPU. The pinned buffer comes from PyTorch's caching host allocator and is not touched again."""
    device = torch.device(device)
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)
