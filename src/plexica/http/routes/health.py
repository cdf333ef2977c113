"""Liveness and readiness (``/metrics`` is served by :mod:`plexica.http.metrics_endpoint`).

``/health`` checks every configured dependency at once, each within ``http.health_timeout_seconds``,
and answers 503 only when a required one is down. Anonymous callers in production see only the
overall status; the checks, latencies and plugin names need ``X-Health-Token`` or a super-admin
token. ``/ready`` checks the database only, and is a 503 problem when it does not answer.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from plexica.http.schemas.platform import Health, Ready
from plexica.http.scope import request_state
from plexica.http.services import services_of
from plexica_sdk.errors import BackendUnavailableError
from plexica_sdk.schema import Header, api

__all__ = ["routes"]

_NO_STORE = {"Cache-Control": "no-store"}


@api(
    response=Health,
    public=True,
    headers=(Header(name="X-Health-Token", description="shows the checks and plugins to operators"),),
)
async def health(request: Request) -> JSONResponse:
    """Every dependency's status and latency (details only for those allowed to see them)."""
    services = services_of(request)
    checker = services.health
    report = await checker.check()
    principal = request_state(request.scope).principal
    body: dict[str, object] = {"status": report.status}
    if checker.discloses_to(
        token=request.headers.get("x-health-token"), super_admin=principal is not None and principal.is_super_admin
    ):
        body["checks"] = {result.name: result.as_json() for result in report.checks}
        body["plugins"] = [p.name for p in services.plugins()]
    return JSONResponse(body, status_code=200 if report.healthy else 503, headers=_NO_STORE)


@api(response=Ready, public=True)
async def ready(request: Request) -> JSONResponse:
    """Readiness: the database answers within the health timeout.

    Raises:
        BackendUnavailableError: it does not (a 503 problem).
    """
    [result] = (await services_of(request).health.check(["database"])).checks
    if not result.ok:
        raise BackendUnavailableError("database", result.status)
    return JSONResponse({"status": "ready"}, headers=_NO_STORE)


routes = [
    Route("/health", health, methods=["GET"]),
    Route("/ready", ready, methods=["GET"]),
]
