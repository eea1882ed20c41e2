"""Query encoders served by Ray Serve (the ``ray`` extra), with request batching: one application per model, its
replicas (on GPUs, say) each holding the model once; every query is its own request, and ``serve.batch`` gathers
the requests that arrive within ``wait_s`` (at most ``max_batch``) into one forward pass, across every coordinator
that sends them.

    encoders = Encoders(remote=remote_queries(replicas=2, device="cuda", gpus=1))   # on a connected Ray cluster
    engine = Engine(root, encoders)                                              # its queries encode on Serve

``LSR_RAY_QUERY_REPLICAS`` makes the service do this (with ``LSR_RAY_ADDRESS``). The coordinator still loads the
models for what else needs them (query tokens, explain, documents it is sent as text).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from .encoders import Encoders, QueryFn

logger = logging.getLogger(__name__)


def _replica_class() -> type:
    from ray import serve

    class QueryEncoderReplica:
        """One replica: the model, loaded once, and the batches it was given (``batch_sizes``, for tests)."""

        def __init__(self, kind: str, name: str, device: str, max_batch: int, wait_s: float) -> None:
            self.encoders = Encoders(device)
            self.kind, self.name = kind, name
            getattr(self.encoders, kind)(name)  # load now, not on the first request
            self.sizes: list[int] = []
            self.batch.set_max_batch_size(max_batch)
            self.batch.set_batch_wait_timeout_s(wait_s)

        @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.005)
        async def batch(self, texts: list[str]) -> list:
            self.sizes.append(len(texts))
            return self.encoders.queries(self.kind, self.name, texts)

        async def encode(self, text: str) -> Any:
            return await self.batch(text)

        def batch_sizes(self) -> list[int]:
            return list(self.sizes)

    return QueryEncoderReplica


def app_name(kind: str, name: str) -> str:
    return "lsr-query-" + kind + "-" + re.sub(r"[^A-Za-z0-9_-]+", "-", name)[-80:]


def deploy(
    kind: str, name: str, replicas: int = 1, device: str = "cpu", cpus: float = 1.0, gpus: float = 0.0,
    max_batch: int = 64, wait_s: float = 0.005,
) -> Any:  # fmt: skip
    """Run the query encoder of ``name`` (``kind`` sparse or dense) as a Ray Serve application of ``replicas``
    replicas on the connected cluster; returns its handle (``encode.remote(text)``)."""
    from ray import serve

    if kind not in ("sparse", "dense"):
        raise ValueError(f"kind must be sparse or dense, not {kind!r}")
    if replicas < 1:
        raise ValueError(f"replicas must be at least 1, not {replicas}")
    deployment = serve.deployment(_replica_class(), max_ongoing_requests=4 * max_batch,
                                  ray_actor_options={"num_cpus": cpus, "num_gpus": gpus})  # fmt: skip
    app = app_name(kind, name)
    handle = serve.run(
        deployment.options(name=app, num_replicas=replicas).bind(kind, name, device, max_batch, wait_s),
        name=app, route_prefix=None,
    )  # fmt: skip
    logger.info("%s: %d replicas on Ray Serve (%s)", app, replicas, device)
    return handle


def remote_queries(
    replicas: int = 1, device: str = "cpu", cpus: float = 1.0, gpus: float = 0.0, max_batch: int = 64,
    wait_s: float = 0.005,
) -> Callable[[str, str], QueryFn]:  # fmt: skip
    """An ``Encoders(remote=)``: each model's query encoder deployed on first use; a list of texts is sent as
    one request per text (Serve batches them) and the answers gathered in order."""

    def remote(kind: str, name: str) -> QueryFn:
        handle = deploy(kind, name, replicas, device, cpus, gpus, max_batch, wait_s)

        def encode(texts: list[str]) -> list:
            calls = [handle.encode.remote(t) for t in texts]
            return [c.result() for c in calls]

        return encode

    return remote
