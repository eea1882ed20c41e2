"""The import direction written in ARCHITECTURE.md, enforced: cli -> service, eval -> retrieval -> lsr, indexer;
indexer imports none of the others and never torch. And the serving floors import without torch installed."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("indexer", "lsr", "retrieval", "eval", "service", "cli")
ALLOWED = {
    "indexer": set(),
    "lsr": {"indexer"},
    "retrieval": {"indexer", "lsr"},
    "eval": {"indexer", "lsr", "retrieval"},
    "service": {"indexer", "lsr", "retrieval"},
    "cli": {"indexer", "lsr", "retrieval", "eval", "service"},
}
HEAVY = {"torch", "transformers", "sentence_transformers", "peft"}


def imports(package: str) -> dict[str, set[str]]:
    """Top-level module -> files of ``package`` importing it, lazy imports inside functions included."""
    out: dict[str, set[str]] = {}
    for f in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for n in names:
                out.setdefault(n.split(".")[0], set()).add(str(f.relative_to(ROOT)))
    return out


def test_imports_point_one_way() -> None:
    wrong = {}
    for package in PACKAGES:
        found = imports(package)
        for other in set(PACKAGES) - {package} - ALLOWED[package]:
            if other in found:
                wrong[f"{package} -> {other}"] = sorted(found[other])
    assert not wrong, wrong


def test_the_indexer_never_imports_torch() -> None:
    assert not HEAVY & set(imports("indexer"))


def test_indexer_retrieval_and_the_service_app_import_without_torch() -> None:
    blocked = ", ".join(f"{m!r}: None" for m in sorted(HEAVY))
    code = (
        f"import sys; sys.modules.update({{{blocked}}})\n"
        "import indexer, retrieval.collection, retrieval.searcher, retrieval.engine, retrieval.live\n"
        "from indexer import Index, IndexBuilder, SparseBatch\n"
        "from service.app import create_app\n"
        "create_app\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
