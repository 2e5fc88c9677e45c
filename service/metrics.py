"""Prometheus metrics: per-route request counts and latency, the loaded artifact version and the
model's age, the ranked-list cache and the served-list log.

With several workers (``matcher serve --workers N``) the metrics of all workers are aggregated
through ``PROMETHEUS_MULTIPROC_DIR``, which ``matcher serve`` sets up.
"""

from __future__ import annotations

import os
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST  # noqa: F401  (re-exported for the route)

BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("matcher_http_requests", "HTTP requests by route template, method and status",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("matcher_http_request_duration_seconds", "Request latency by route template",
                                 ["route", "method"], buckets=BUCKETS, registry=r)
        self.artifact = Gauge("matcher_artifact_loaded", "1 for the artifact version this worker serves", ["version", "ranker"],
                              registry=r, multiprocess_mode="livemax")
        self.model_created = Gauge("matcher_model_created_timestamp_seconds", "Creation time of the served version",
                                   registry=r, multiprocess_mode="livemax")
        self.model_age = Gauge("matcher_model_age_seconds", "Age of the served artifact version (at scrape time)",
                               registry=r, multiprocess_mode="livemax")
        self.cache = Gauge("matcher_ranked_list_cache", "Ranked-list cache of the served version: hits, misses, entries",
                           ["what"], registry=r, multiprocess_mode="livesum")
        self.reloads = Counter("matcher_artifact_reloads", "Artifact swaps", registry=r)
        self.served_dropped = Gauge("matcher_served_log_dropped", "Served-list log rows dropped (queue full or DB down)",
                                    registry=r, multiprocess_mode="livesum")
        self.served_pending = Gauge("matcher_served_log_pending", "Served-list log rows waiting to be written",
                                    registry=r, multiprocess_mode="livesum")
        self._version: tuple[str, str] | None = None
        self._created: float | None = None

    def set_artifact(self, version: str, ranker: str, created: float | None) -> None:
        if self._version is not None:
            self.artifact.remove(*self._version)
        self._version = (version, ranker)
        self.artifact.labels(version, ranker).set(1)
        self._created = created
        if created is not None:
            self.model_created.set(created)

    def render(self, pending: int = 0, dropped: int = 0, cache: dict | None = None) -> bytes:
        for what, value in (cache or {}).items():
            self.cache.labels(what).set(value)
        if self._created is not None:
            self.model_age.set(max(0.0, time.time() - self._created))
        self.served_pending.set(pending)
        self.served_dropped.set(dropped)
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
