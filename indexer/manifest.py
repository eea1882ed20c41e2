"""The index manifest: what an index is, written last so its presence means complete."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import CorruptIndexError

FORMAT = "lsr-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
POSTINGS = "postings.bin"
LEXICON = "docids.bin"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Manifest:
    vocab_size: int
    num_docs: int
    num_postings: int
    impact_scale: float
    model_id: str | None = None
    vocab_hash: str | None = None
    quantization: str = "uint8 impacts, scale = max weight / 255; uint16-range integer query weights"
    files: dict[str, dict[str, int | str]] = field(default_factory=dict)
    # static pruning applied at build time ({"max_terms": ..., "mass": ...}, see indexer.csr.prune_rows), or None
    static_pruning: dict[str, int | float | None] | None = None
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode("utf-8")

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        path = directory / MANIFEST
        if not directory.is_dir():
            raise FileNotFoundError(f"no index at {directory}")
        if not path.exists():
            raise CorruptIndexError(f"{directory} has no {MANIFEST}: the index is incomplete (build interrupted?)")
        try:
            raw = json.loads(path.read_bytes())
            manifest = cls(**raw)
        except (ValueError, TypeError) as e:
            raise CorruptIndexError(f"{path}: unreadable manifest ({e})") from None
        if manifest.format != FORMAT or manifest.format_version != FORMAT_VERSION:
            raise CorruptIndexError(
                f"{path}: format {manifest.format!r} v{manifest.format_version}, "
                f"this version reads {FORMAT!r} v{FORMAT_VERSION}"
            )
        return manifest

    def check_files(self, directory: Path) -> None:
        """Sizes always; the lexicon's sha256 too (the postings file carries its own checksums)."""
        for name, info in self.files.items():
            path = directory / name
            if not path.exists():
                raise CorruptIndexError(f"{directory}: missing {name}")
            if path.stat().st_size != info["bytes"]:
                raise CorruptIndexError(f"{path}: {path.stat().st_size} bytes, manifest says {info['bytes']}")
            if "sha256" in info and sha256_file(path) != info["sha256"]:
                raise CorruptIndexError(f"{path}: sha256 mismatch")
