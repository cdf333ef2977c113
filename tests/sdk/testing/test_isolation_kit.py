"""The isolation kit finds tenant A's data wherever tenant B could see it, and refuses to prove nothing."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from plexica_plugin_notes import NotesPlugin
from plexica_plugin_notes.models import notes
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import plexica_sdk
from plexica_sdk import Event, PluginManifest, hookimpl
from plexica_sdk.testing import CANARY, Call, Delivery, IsolationError, IsolationKit, ProvisionedTenant, RunningHost

pytestmark = pytest.mark.anyio

Plant = Callable[[str], Awaitable[None]]


class Leaky:
    """A plugin whose writes hand their text to ``plant`` (standing in for a host bug) and whose
    ``/shared`` route shows every tenant's writes (a plugin bug)."""

    def __init__(self) -> None:
        self.plant: Plant | None = None
        self.by_tenant: dict[str, list[str]] = {}

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(name="leaky", version="1.0.0", description="leaks on purpose")

    @hookimpl
    def plexica_routes(self) -> Sequence[Any]:
        async def write(request: Request) -> JSONResponse:
            text = json.loads(await request.body())["text"]
            self.by_tenant.setdefault(plexica_sdk.host(request).tenant.slug, []).append(text)
            if self.plant is not None:
                await self.plant(text)
            return JSONResponse({"ok": True}, status_code=201)

        async def mine(request: Request) -> JSONResponse:
            return JSONResponse(self.by_tenant.get(plexica_sdk.host(request).tenant.slug, []))

        async def shared(request: Request) -> JSONResponse:
            return JSONResponse([text for texts in self.by_tenant.values() for text in texts])

        return [Route("/items", write, methods=["POST"]), Route("/items", mine), Route("/shared", shared)]


@pytest.fixture
def leaky() -> Leaky:
    return Leaky()


@pytest.fixture
def plexica_plugins(leaky: Leaky) -> list[object]:
    return [leaky, NotesPlugin()]


WRITE = [Call.post("/items", {"text": f"hello {CANARY}"})]


async def test_an_isolated_plugin_passes_and_the_report_shows_what_a_held(isolation: IsolationKit) -> None:
    report = await isolation.check(WRITE, ["/items"])
    assert report.seen_in_a["routes"] == 1
    assert report.scanned_in_b["routes"] == 1
    assert report.canary in report.markers


async def test_a_route_showing_other_tenants_data_is_a_leak(isolation: IsolationKit) -> None:
    with pytest.raises(IsolationError) as caught:
        await isolation.check(WRITE, ["/items", "/shared"])
    assert [(leak.channel, leak.where) for leak in caught.value.leaks] == [("routes", "GET /api/plugins/leaky/shared")]
    assert isolation.b.slug in str(caught.value)


async def test_a_reads_that_never_show_the_canary_prove_nothing(isolation: IsolationKit) -> None:
    with pytest.raises(AssertionError, match="proves nothing"):
        await isolation.check([Call.post("/items", {"text": "no canary here"})], ["/items"])


async def test_a_failing_write_of_a_is_reported(isolation: IsolationKit) -> None:
    with pytest.raises(AssertionError, match="got 404"):
        await isolation.check([Call.post("/nowhere", {"text": CANARY})], ["/items"])


async def test_a_data_found_in_b_database_cache_or_objects_is_a_leak(
    plexica_host: RunningHost, two_tenants: tuple[ProvisionedTenant, ProvisionedTenant], leaky: Leaky
) -> None:
    _, b = two_tenants
    platform = plexica_host.platform

    async def plant(text: str) -> None:
        # What a host bug could do: A's text written into B's table, cache and objects.
        async with platform.db.tenant_connection(b.info.schema) as conn:
            now = dt.datetime.now(dt.UTC)
            row = {"id": "planted", "title": text, "body": text, "author_id": "x", "created_at": now, "updated_at": now}
            await conn.execute(notes.insert().values(**row))
        await platform.cache.set(f"{b.context.cache_prefix}plugin:leaky:k", text.encode())
        bucket = platform.storage_layout.bucket(b.slug)
        await platform.objects.put(
            bucket, platform.storage_layout.plugin_prefix(b.slug, "leaky") + "f.txt", text.encode()
        )
        # ... and a delivery of A's event to B's consumers.
        event = Event(type="leaky.item.created", source="/plugins/leaky", data={"text": text})
        await plexica_host.events.record(Delivery(event, b.slug))

    leaky.plant = plant
    kit = IsolationKit(plexica_host, *two_tenants, plugin="leaky")
    with pytest.raises(IsolationError) as caught:
        await kit.check(WRITE, ["/items"])
    assert sorted({leak.channel for leak in caught.value.leaks}) == ["cache", "database", "events", "objects"]
    assert all(leak.marker == caught.value.report.canary for leak in caught.value.leaks)
