"""A progress bar with an ETA (tqdm) when asked for, and a no-op stand-in otherwise."""

from __future__ import annotations

from typing import Any


class NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def progress(total: int, show: bool, desc: str, unit: str = "text", initial: int = 0) -> Any:
    if not show:
        return NoProgress()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, smoothing=0.05)
