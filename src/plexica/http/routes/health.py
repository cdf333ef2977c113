"""Liveness, readiness and metrics."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from plexica.http.services import services_of
from plexica.observability.metrics import CONTENT_TYPE
from plexica_sdk.errors import PlexicaError

__all__ = ["routes"]


async def health(request: Request) -> JSONResponse:
    """Full health: every configured probe (database, cache) and the plugins loaded."""
    services = services_of(request)
    checks: dict[str, str] = {}
    for name, probe in services.probes.items():
        try:
            await probe()
            checks[name] = "ok"
        except PlexicaError:
            checks[name] = "unavailable"
    healthy = all(value == "ok" for value in checks.values())
    body = {
        "status": "ok" if healthy else "degraded",
        "checks": checks,
        "plugins": [p.name for p in services.plugins()],
    }
    return JSONResponse(body, status_code=200 if healthy else 503)


async def ready(request: Request) -> JSONResponse:
    """Readiness: the database answers."""
    await services_of(request).probes["database"]()
    return JSONResponse({"status": "ready"})


async def metrics(request: Request) -> Response:
    """Prometheus metrics."""
    services = services_of(request)
    services.metrics.active_plugins.set(len(services.plugins()))
    return Response(services.metrics.render(), media_type=CONTENT_TYPE)


routes = [
    Route("/health", health, methods=["GET"]),
    Route("/ready", ready, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
