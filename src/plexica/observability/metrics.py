"""Prometheus metrics of the seed: requests, latency, events, tenants, plugins.

Each :class:`Metrics` has its own registry, so several hosts (and tests) in one process never
collide on the global default registry.
"""

from __future__ import annotations

from typing import final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@final
class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "http_requests_total", "HTTP requests", ["method", "route", "status", "tenant_id"], registry=self.registry
        )
        self.http_duration = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.events_published = Counter(
            "events_published_total", "Events published", ["event_type", "tenant_id"], registry=self.registry
        )
        self.active_tenants = Gauge("active_tenants", "Tenants in state active", registry=self.registry)
        self.active_plugins = Gauge("active_plugins", "Plugins loaded by this host", registry=self.registry)

    def observe_request(self, method: str, route: str, status: int, seconds: float, tenant_id: str) -> None:
        self.http_requests.labels(method, route, str(status), tenant_id).inc()
        self.http_duration.labels(method, route, str(status)).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
