"""Prometheus metrics. One registry per app, so several apps (tests, several
nodes in one process) never collide; other modules add their own metrics to
``Metrics.registry``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from .gc_tuning import gc_gauges

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "skillshare_http_requests_total",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "skillshare_http_request_duration_seconds",
            "HTTP request latency by route and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.mails = Counter(
            "skillshare_mails_total",
            "Mails by outcome (sent, retry, failed).",
            ["outcome"],
            registry=self.registry,
        )
        self.redis_bus_errors = Counter(
            "skillshare_redis_bus_errors_total",
            "Redis failures in fan-out, presence and the control bus.",
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "skillshare_rate_limited_total",
            "Requests refused by a rate limit, by limit name.",
            ["limit"],
            registry=self.registry,
        )

        gc_gauges(self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
