"""Checkpoints that resume exactly: trainable weights, optimiser, scheduler, every RNG, and the data position.

    <out>/checkpoints/step-0000120/state.pt             torch.save of the dicts below
    <out>/checkpoints/step-0000120/meta.json            step, epoch, batch, the encoder's vocabulary hash and base
    <out>/checkpoints/step-0000120/weights.safetensors  the trainable weights alone, in the run's save_dtype

``weights.safetensors`` is the portable part: small enough to carry off a lent GPU machine at every poll (the
optimiser's moments triple the size of ``state.pt``). A folder with only it and ``meta.json`` still gives the
model (``--save-latest``) and warm-starts training at its step, the optimiser's moments starting again from zero
(not an exact resume; the log says so).

Each checkpoint is written into a staging folder and renamed into place, so a crash never leaves a
half-written checkpoint that looks whole.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from indexer.atomic import staged

STATE = "state.pt"
META = "meta.json"
WEIGHTS = "weights.safetensors"


@dataclass
class Position:
    step: int = 0  # optimiser steps done
    epoch: int = 0
    batch: int = 0  # next batch of the epoch


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def save(
    folder: Path,
    model: torch.nn.Module,
    optimizer: Any,
    scheduler: Any,
    pos: Position,
    identity: dict[str, str],
    weights_dtype: torch.dtype = torch.float32,
) -> Path:
    from safetensors.torch import save_file

    final = folder / f"step-{pos.step:07d}"
    with staged(final, overwrite=True) as work:
        trained = trainable_state(model)  # one copy off the device for both files
        save_file({n: t.to(weights_dtype).contiguous() for n, t in trained.items()}, str(work / WEIGHTS))
        torch.save(
            {
                "model": trained,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": rng_state(),
            },
            work / STATE,
        )
        meta = {"step": pos.step, "epoch": pos.epoch, "batch": pos.batch, **identity}
        (work / META).write_text(json.dumps(meta, indent=2) + "\n")
    return final


def is_full(path: Path) -> bool:
    """Whether a checkpoint resumes exactly (it has the optimiser, scheduler and RNG state), not only weights."""
    return (path / STATE).is_file()


def latest(folder: Path) -> Path | None:
    """The checkpoint of the highest step: a full one, or one with only the portable weights."""
    if not folder.is_dir():
        return None
    done = sorted(
        p for p in folder.glob("step-*") if (p / META).is_file() and ((p / STATE).is_file() or (p / WEIGHTS).is_file())
    )
    return done[-1] if done else None


def _meta(path: Path, identity: dict[str, str]) -> dict[str, Any]:
    meta = json.loads((path / META).read_text())
    for key, want in identity.items():
        if meta.get(key) != want:
            raise ValueError(
                f"{path}: checkpoint was made for {key} {meta.get(key)!r}, this run has {want!r}; "
                "use another run folder or the matching config"
            )
    return meta


def _set_weights(path: Path, model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    trainable = {n for n, p in params.items() if p.requires_grad}
    if set(weights) != trainable:
        raise ValueError(f"{path}: checkpoint holds other trainable weights than this model (LoRA or heads differ)")
    with torch.no_grad():
        for n, t in weights.items():
            if params[n].shape != t.shape:
                raise ValueError(
                    f"{path}: weight {n} has shape {tuple(t.shape)}, the model has {tuple(params[n].shape)}"
                )
            params[n].copy_(t)


def load(path: Path, model: torch.nn.Module, optimizer: Any, scheduler: Any, identity: dict[str, str]) -> Position:
    """Restore everything saved at ``path``; refuses a checkpoint of another model or vocabulary."""
    meta = _meta(path, identity)
    state = torch.load(path / STATE, map_location="cpu", weights_only=False)
    _set_weights(path, model, state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return Position(meta["step"], meta["epoch"], meta["batch"])


def load_weights(path: Path, model: torch.nn.Module, identity: dict[str, str]) -> Position:
    """Only the portable weights of ``path`` (and its position); the caller restarts the optimiser."""
    from safetensors.torch import load_file

    meta = _meta(path, identity)
    _set_weights(path, model, load_file(str(path / WEIGHTS)))
    return Position(meta["step"], meta["epoch"], meta["batch"])
