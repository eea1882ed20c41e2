"""Prometheus metrics, one registry per app."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

BUCKETS_MS = (0.25, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "lsr_request_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=tuple(b / 1000 for b in BUCKETS_MS),
        )
        self.encode = Histogram(
            "lsr_encode_ms", "query encoding time per search", ["index"], registry=self.registry, buckets=BUCKETS_MS
        )
        self.search = Histogram(
            "lsr_search_ms",
            "index search time per search",
            ["index", "mode"],
            registry=self.registry,
            buckets=BUCKETS_MS,
        )
        self.postings = Counter("lsr_postings_scored", "postings scored", ["index"], registry=self.registry)
