"""Liveness, readiness and metrics."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from plexica.http.guards import platform_of
from plexica.observability.metrics import CONTENT_TYPE
from plexica_sdk.errors import PlexicaError

__all__ = ["routes"]


async def health(request: Request) -> JSONResponse:
    """Full health: the database, the cache and the plugins loaded."""
    platform = platform_of(request)
    checks: dict[str, str] = {}
    try:
        await platform.db.ping()
        checks["database"] = "ok"
    except PlexicaError:
        checks["database"] = "unavailable"
    try:
        await platform.cache.get("plexica:health")
        checks["cache"] = "ok"
    except PlexicaError:
        checks["cache"] = "unavailable"
    healthy = all(value == "ok" for value in checks.values())
    body = {"status": "ok" if healthy else "degraded", "checks": checks, "plugins": list(platform.plugins.order)}
    return JSONResponse(body, status_code=200 if healthy else 503)


async def ready(request: Request) -> JSONResponse:
    """Readiness: the database answers."""
    await platform_of(request).db.ping()
    return JSONResponse({"status": "ready"})


async def metrics(request: Request) -> Response:
    """Prometheus metrics."""
    platform = platform_of(request)
    platform.metrics.active_plugins.set(len(platform.plugins.order))
    return Response(platform.metrics.render(), media_type=CONTENT_TYPE)


routes = [
    Route("/health", health, methods=["GET"]),
    Route("/ready", ready, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
