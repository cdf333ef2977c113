"""The audit-log tests use the ``plexica_sdk.testing`` pytest plugin, with a second plugin to audit.

``probe`` stands for any other plugin: ``POST /api/plugins/probe/things`` publishes
``probe.thing.happened`` as the caller, so the tests see the audit trail pick up a plugin's event
(not only the core's) through the real bus.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from plexica_plugin_audit_log import AuditLogPlugin
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import plexica_sdk
from plexica_sdk import EventTypeDef, PluginManifest, hookimpl

PROBE_EVENT = "probe.thing.happened"


class ProbePlugin:
    """A plugin that publishes one event per ``POST /things`` and reads it back (per tenant, in memory)."""

    def __init__(self) -> None:
        self.things: dict[tuple[str, str], dict[str, Any]] = {}

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(
            name="probe",
            version="1.0.0",
            description="publishes events for the audit-log tests",
            event_types=(EventTypeDef(type=PROBE_EVENT, schema={"type": "object"}),),
        )

    @hookimpl
    def plexica_routes(self) -> Sequence[Any]:
        return [Route("/things", self.create, methods=["POST"]), Route("/things/{id}", self.read, methods=["GET"])]

    async def create(self, request: Request) -> JSONResponse:
        host = plexica_sdk.host(request)
        thing = {"id": str(uuid.uuid4()), **(await request.json())}
        self.things[(host.tenant.tenant_id, thing["id"])] = thing
        await host.publish(PROBE_EVENT, thing, subject=thing["id"])
        return JSONResponse(thing, status_code=201)

    async def read(self, request: Request) -> JSONResponse:
        host = plexica_sdk.host(request)
        thing = self.things.get((host.tenant.tenant_id, request.path_params["id"]))
        return JSONResponse(thing or {}, status_code=200 if thing else 404)


@pytest.fixture
def plexica_plugins() -> list[object]:
    return [AuditLogPlugin(), ProbePlugin()]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
