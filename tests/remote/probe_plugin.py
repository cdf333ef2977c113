"""A plugin made to be served remotely in tests: it writes what reached it to ``$PROBE_LOG``, one JSON line each.

Its hooks and handlers need no host callbacks, so the host → plugin direction is tested on its
own; its routes answer the shapes the reverse proxy must cope with (streams, slow answers,
problems, bad problems, the headers that reached it).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from plexica_sdk import (
    Event,
    EventTypeDef,
    Host,
    PermissionDef,
    PluginManifest,
    RoleDef,
    Subscription,
    TenantContext,
    context,
    hookimpl,
)
from plexica_sdk.errors import PermissionDeniedError, ValidationError

LOG_ENV = "PROBE_LOG"


def record(kind: str, **fields: Any) -> None:
    """Append one line to the probe's log (the tests read it to see what the plugin received)."""
    path = os.environ.get(LOG_ENV)
    if path:
        with Path(path).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"kind": kind, **fields}) + "\n")


async def on_tenant_created(event: Event, host: Host) -> None:
    record("event", type=event.type, id=event.id, tenant=event.tenantid, context=context.current().slug)


async def on_tenant_suspended(event: Event, host: Host) -> None:
    """Fails on the first delivery of each event: the bus must retry it (at least once)."""
    marker = Path(os.environ[LOG_ENV]).with_suffix(f".{event.id}")
    if not marker.exists():
        marker.write_text("seen")
        raise RuntimeError("first delivery fails on purpose")
    record("event", type=event.type, id=event.id, tenant=event.tenantid, context=context.current().slug)


async def headers(request: Request) -> JSONResponse:
    """The request headers that reached the plugin, and a cookie the host must not pass on."""
    response = JSONResponse({"headers": dict(request.headers), "path": request.url.path, "query": request.url.query})
    response.set_cookie("plugin_session", "x")
    response.headers["X-Probe"] = "1"
    return response


async def upload(request: Request) -> JSONResponse:
    """Reads the body as it streams; answers its size and digest."""
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        digest.update(chunk)
    return JSONResponse({"size": size, "sha256": digest.hexdigest()})


async def stream(request: Request) -> StreamingResponse:
    """``n`` chunks, ``delay`` seconds apart."""
    count = int(request.query_params.get("n", "3"))
    delay = float(request.query_params.get("delay", "0"))

    async def chunks() -> AsyncIterator[bytes]:
        for index in range(count):
            yield f"chunk {index}\n".encode()
            await asyncio.sleep(delay)

    return StreamingResponse(chunks(), media_type="text/plain")


async def slow(request: Request) -> JSONResponse:
    await asyncio.sleep(float(request.query_params.get("seconds", "5")))
    return JSONResponse({"slept": True})


async def denied(request: Request) -> JSONResponse:
    raise PermissionDeniedError("probe:thing:write", "no role of alice grants it")


async def bad_problem(request: Request) -> Response:
    return Response(b'{"error": "NotFound', status_code=404, media_type="application/problem+json")


async def unknown_error(request: Request) -> Response:
    body = {"type": "x", "title": "Evil", "status": 418, "error": "EvilError", "attributes": {}, "protocol": 1}
    return JSONResponse(body, status_code=418, media_type="application/problem+json")


async def thing(request: Request) -> JSONResponse:
    return JSONResponse({"id": request.path_params["thing_id"]})


async def crash(request: Request) -> Response:
    os._exit(3)  # killed mid-request: no answer at all


class ProbePlugin:
    """A remote-only test plugin."""

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(
            name="probe",
            version="1.0.0",
            description="Records what reaches it",
            permissions=(PermissionDef(key="probe:thing:read", description="Read things"),),
            default_roles=(RoleDef(name="member", permissions=("probe:thing:read",)),),
            event_types=(EventTypeDef(type="probe.thing.pinged", description="A thing was pinged"),),
        )

    @hookimpl
    def plexica_host_started(self) -> None:
        record("started", pid=os.getpid())  # which process the host announced itself to

    @hookimpl
    def plexica_permissions(self) -> Sequence[PermissionDef]:
        return [PermissionDef(key="probe:thing:ping", description="Ping things")]

    @hookimpl
    def plexica_tenant_provisioned(self, tenant: TenantContext) -> None:
        record("hook", hook="plexica_tenant_provisioned", tenant=tenant.slug, context=context.current().slug)

    @hookimpl
    def plexica_plugin_installed(self, tenant: TenantContext, version: str) -> None:
        record("hook", hook="plexica_plugin_installed", tenant=tenant.slug, version=version)

    @hookimpl
    def plexica_tenant_suspended(self, tenant: TenantContext) -> None:
        record("hook", hook="plexica_tenant_suspended", tenant=tenant.slug)

    @hookimpl
    async def plexica_resource_attributes(
        self, resource_type: str, resource_id: str, tenant: TenantContext
    ) -> Mapping[str, Any] | None:
        if resource_id == "garbage":
            return "not a mapping"  # type: ignore[return-value]  # a plugin answering the wrong type
        if resource_id == "invalid":
            raise ValidationError("no such thing id", field="resource_id")
        if resource_id == "slow":
            await asyncio.sleep(5)
        user = tenant.user
        return {"owner": user.id if user else None, "id": resource_id, "tenant": tenant.slug}

    @hookimpl
    def plexica_subscriptions(self) -> Sequence[Subscription]:
        return [
            Subscription(event_type="core.tenant.created", handler=on_tenant_created),
            Subscription(event_type="core.tenant.suspended", handler=on_tenant_suspended, max_attempts=5),
        ]

    @hookimpl
    def plexica_routes(self) -> Sequence[Any]:
        return [
            Route("/headers", headers),
            Route("/upload", upload, methods=["POST"]),
            Route("/stream", stream),
            Route("/slow", slow),
            Route("/denied", denied),
            Route("/bad-problem", bad_problem),
            Route("/unknown-error", unknown_error),
            Route("/crash", crash),
            Route("/things/{thing_id}", thing),
            Mount("/shelves", routes=[Route("/{shelf:int}/things/{thing_id}", thing, methods=["PUT"])]),
        ]
