"""The published OpenAPI schema is kept as data: a change to the service's contract shows up as a diff in review.

After a deliberate change, regenerate it:

    python -c "import json; from service.app import create_app; \\
print(json.dumps(create_app().openapi(), indent=1, sort_keys=True))" > tests/data/openapi.json
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.app import create_app
from service.settings import Settings

SNAPSHOT = Path(__file__).parent / "data" / "openapi.json"


def test_openapi_schema_matches_the_snapshot(tmp_path: Path) -> None:
    spec = create_app(Settings(root=tmp_path)).openapi()
    expected = json.loads(SNAPSHOT.read_text())
    if spec != expected:
        changed = sorted(set(spec["paths"]) ^ set(expected["paths"])) or sorted(
            p for p in spec["paths"] if spec["paths"][p] != expected["paths"].get(p)
        )
        pytest.fail(f"the OpenAPI schema differs from {SNAPSHOT} (paths: {changed or 'components'}); see the docstring")
