"""Helpers of the audit-log tests: a plugin to audit, reading the trail over HTTP, waiting for entries."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import httpx2
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import plexica_sdk
from plexica_sdk import EventTypeDef, PluginManifest, hookimpl
from plexica_sdk.testing import ProvisionedTenant, RunningHost

AUDITOR = ("auditor",)

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


async def entries(host: RunningHost, tenant: ProvisionedTenant, **params: str) -> dict[str, Any]:
    """``GET /entries`` as an auditor, with ``params`` as the query."""
    response = await host.client.get(host.url("/entries"), params=params, headers=tenant.headers("aud", AUDITOR))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def wait_for_entry(
    host: RunningHost, tenant: ProvisionedTenant, where: Callable[[dict[str, Any]], bool], **params: str
) -> dict[str, Any]:
    """The first entry matching ``where``, once the (asynchronous) delivery has recorded it."""
    with anyio.fail_after(10):
        while True:
            items: list[dict[str, Any]] = (await entries(host, tenant, limit="500", **params))["items"]
            for item in items:
                if where(item):
                    return item
            await anyio.sleep(0.05)


async def publish_probe(host: RunningHost, tenant: ProvisionedTenant, user: str = "ann", **data: Any) -> dict[str, Any]:
    response = await host.client.post(
        host.url("/things", plugin="probe"), json=data, headers=tenant.headers(user, ["member"])
    )
    assert response.status_code == 201, response.text
    thing: dict[str, Any] = response.json()
    return thing


def assert_problem(response: httpx2.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


async def wait_for_subjects(host: RunningHost, tenant: ProvisionedTenant, things: list[dict[str, Any]]) -> None:
    """Wait until every one of ``things`` is in the trail (deliveries of different subjects may interleave)."""
    for thing in things:
        wanted = thing["id"]

        def about(entry: dict[str, Any], wanted: str = wanted) -> bool:
            return bool(entry["subject"] == wanted)

        await wait_for_entry(host, tenant, about)
