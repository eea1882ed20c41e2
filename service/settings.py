"""Service settings from the environment (``LSR_*``) through pydantic-settings."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from indexer.index import ALGORITHMS


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LSR_")

    root: Path = Field(Path("runs/service"), description="folder of the live indexes")
    host: str = Field("127.0.0.1", description="address to listen on (keys are required off loopback)")
    port: int = Field(8000, description="port to listen on")
    device: str = Field("cpu", description="where encoders run: cpu, cuda, cuda:1, ...")
    admin_keys: list[str] = Field(default_factory=list, description="API keys that may write (a JSON list)")
    read_keys: list[str] = Field(default_factory=list, description="API keys that may only read (a JSON list)")
    max_top_k: int = Field(1000, description="largest top_k of a search")
    max_offset: int = Field(10_000, description="largest offset of a search")
    max_body_bytes: int = Field(16 * 1024 * 1024, description="largest request body (413 past it)")
    body_timeout_s: float = Field(30.0, gt=0, description="seconds a request body may pause before a 408")
    max_batch: int = Field(1000, description="queries of a /search/batch, documents or ids of one write")
    max_texts: int = Field(256, description="texts of one /v1/encode")
    max_text_chars: int = Field(100_000, ge=1, description="characters of one text to encode (/v1/encode)")
    max_request_chars: int = Field(
        1_000_000, ge=1, description="characters of text one request may ask to encode, over all its texts or queries"
    )
    max_batch_hits: int = Field(100_000, ge=1, description="hits one /search/batch may ask for: sum of offset + top_k")
    search_threads: int = Field(1, ge=1, description="threads of one batch search (/search/batch)")
    search_algorithm: Literal[ALGORITHMS] = Field(  # the names Index.search_batch takes
        "exhaustive",
        description="how sparse indexes are searched, all exact (indexer.Index.search_batch); auto: block_forward "
        "that hands each query to exhaustive search when that is cheaper. The pruning ones hold derived structures "
        "in memory (about 10 bytes a posting for block_forward and auto)",
    )
    request_budget_s: float = Field(
        60.0, gt=0, description="seconds a /search/batch may compute; past it, a 503 (checked every 64 queries)"
    )
    max_inflight: int = Field(64, ge=1, description="POST requests (searches, encodes, writes) running at once")
    queue_timeout_s: float = Field(
        10.0, gt=0, description="seconds a POST may wait for a slot before a 503 with Retry-After"
    )
    shutdown_timeout_s: float = Field(
        10.0, gt=0, description="seconds SIGTERM waits for requests in flight before the service stops anyway"
    )
    ray_address: str | None = Field(
        None,
        description="serve the shards of sharded indexes on Ray actors (the ray extra): a cluster address, 'auto', "
        "or 'local' to start Ray here; unset: every shard in this process",
    )
    ray_cpus_per_shard: float = Field(0.5, gt=0, description="CPUs Ray reserves for each shard's actor")
    ray_readers_per_shard: int = Field(
        0, ge=0, description="with LSR_RAY_ADDRESS: read replicas per shard, each an actor of its own that serves "
        "searches and gets and sees every acknowledged write (0: the shard's writer serves them)",
    )  # fmt: skip
    ray_query_replicas: int = Field(
        0, ge=0, description="with LSR_RAY_ADDRESS: encode queries on this many Ray Serve replicas per model, which "
        "batch the requests (0: in this process)",
    )  # fmt: skip
    ray_query_device: str = Field("cpu", description="where the query encoder replicas run: cpu, cuda, ...")
    ray_query_cpus: float = Field(1.0, gt=0, description="CPUs Ray reserves for each query encoder replica")
    ray_query_gpus: float = Field(0.0, ge=0, description="GPUs Ray reserves for each query encoder replica")
    log_format: Literal["json", "text"] = Field("json", description="json lines, or text (logfmt fields)")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING, ...")

    @field_validator("admin_keys", "read_keys")
    @classmethod
    def _no_blank_keys(cls, keys: list[str]) -> list[str]:
        """An empty or blank key would let an empty X-API-Key header in: refused at start-up."""
        if any(not k.strip() for k in keys):
            raise ValueError("API keys must not be empty or whitespace")
        return keys

    @classmethod
    def describe(cls) -> list[tuple[str, str, str]]:
        """(environment variable, default, description) of every setting: ``python -m service --help``."""
        prefix = cls.model_config["env_prefix"]
        out = []
        for name, f in cls.model_fields.items():
            default = f.default_factory() if f.default_factory is not None else f.default
            out.append((f"{prefix}{name.upper()}", str(default), f.description or ""))
        return out

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def auth_required(self) -> bool:
        """Keys are required unless the service is bound to loopback and no key is configured."""
        return not self.loopback or bool(self.admin_keys or self.read_keys)
