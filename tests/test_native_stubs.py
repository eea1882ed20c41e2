"""The .pyi stubs of the two native modules (indexer._core, lsr._head) are what nanobind's stub generator writes for
the modules as built: regenerate them with the commands below after changing a binding."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STUBS = {"indexer._core": ROOT / "indexer" / "_core.pyi", "lsr._head": ROOT / "lsr" / "_head.pyi"}


@pytest.mark.parametrize("module", sorted(STUBS))
def test_stub_matches_the_built_module(module: str, tmp_path: Path) -> None:
    pytest.importorskip("nanobind.stubgen")
    pytest.importorskip(module)
    out = tmp_path / "stub.pyi"
    cmd = [sys.executable, "-m", "nanobind.stubgen", "-q", "-m", module, "-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    hint = f"stale stub; run: python -m nanobind.stubgen -m {module} -o {STUBS[module].relative_to(ROOT)}"
    assert out.read_text() == STUBS[module].read_text(), hint
