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
from plexica_sdk.testing import (
    CANARY,
    Call,
    Delivery,
    IsolationError,
    IsolationKit,
    ProvisionedTenant,
    ProvisionedWorkspace,
    RunningHost,
)
from plexica_sdk.workspaces import workspace_id

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


class Spaces:
    """A workspace-scoped plugin: items kept per (tenant, workspace); ``/everywhere`` shows all (a bug)."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], list[str]] = {}

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(name="spaces", version="1.0.0", description="workspace-scoped items")

    @hookimpl
    def plexica_routes(self) -> Sequence[Any]:
        def where(request: Request) -> tuple[str, str]:
            host = plexica_sdk.host(request)
            return host.tenant.slug, workspace_id(host)

        async def write(request: Request) -> JSONResponse:
            self.items.setdefault(where(request), []).append((await plexica_sdk.json_body(request))["text"])
            return JSONResponse({"ok": True}, status_code=201)

        async def mine(request: Request) -> JSONResponse:
            return JSONResponse({"workspace": where(request)[1], "items": self.items.get(where(request), [])})

        async def everywhere(request: Request) -> JSONResponse:
            where(request)
            return JSONResponse([text for texts in self.items.values() for text in texts])

        return [Route("/items", write, methods=["POST"]), Route("/items", mine), Route("/everywhere", everywhere)]


@pytest.fixture
def leaky() -> Leaky:
    return Leaky()


@pytest.fixture
def spaces() -> Spaces:
    return Spaces()


@pytest.fixture
def plexica_plugins(leaky: Leaky, spaces: Spaces) -> list[object]:
    return [leaky, NotesPlugin(), spaces]


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


@pytest.fixture
def spaces_kit(plexica_host: RunningHost, two_tenants: tuple[ProvisionedTenant, ProvisionedTenant]) -> IsolationKit:
    return IsolationKit(plexica_host, *two_tenants, plugin="spaces")


async def test_workspace_scoped_routes_get_a_workspace_in_each_tenant(spaces_kit: IsolationKit, spaces: Spaces) -> None:
    report = await spaces_kit.check(WRITE, ["/items"])

    a, b = spaces_kit.workspaces[spaces_kit.a.slug], spaces_kit.workspaces[spaces_kit.b.slug]
    assert (a.tenant, b.tenant) == (spaces_kit.a, spaces_kit.b) and a.id != b.id
    assert list(spaces.items) == [(spaces_kit.a.slug, a.id)]  # A's write ran in A's workspace
    # B read in its own workspace, then with A's workspace id (refused by the host with 404).
    assert report.scanned_in_b["routes"] == 2


async def test_a_workspace_scoped_leak_is_found(spaces_kit: IsolationKit) -> None:
    with pytest.raises(IsolationError) as caught:
        await spaces_kit.check(WRITE, ["/items", "/everywhere"])
    assert [leak.where for leak in caught.value.leaks] == ["GET /api/plugins/spaces/everywhere"]


async def test_without_workspaces_a_workspace_scoped_write_fails(spaces_kit: IsolationKit) -> None:
    with pytest.raises(AssertionError, match="got 422"):
        await spaces_kit.check(WRITE, ["/items"], workspace=False)


async def test_given_workspaces_are_used_and_other_callers_need_membership(
    plexica_host: RunningHost, two_tenants: tuple[ProvisionedTenant, ProvisionedTenant], spaces: Spaces
) -> None:
    a, b = two_tenants
    mine = await a.make_workspace(admin="alice", members={"bob": "viewer"})
    kit = IsolationKit(plexica_host, a, b, plugin="spaces", workspaces=(mine, await b.make_workspace(admin="alice")))
    await kit.check([Call.post("/items", {"text": f"hi {CANARY}"})], [Call.get("/items", user="bob")])
    assert list(spaces.items) == [(a.slug, mine.id)]

    with pytest.raises(AssertionError, match="got 404"):  # carol is no member of alice's workspace
        await kit.check(WRITE, [Call.get("/items", user="carol")])


async def test_the_workspace_fixture_selects_its_workspace(
    plexica_host: RunningHost, tenant: ProvisionedTenant, workspace: ProvisionedWorkspace
) -> None:
    client, url = plexica_host.client, plexica_host.url("/items", plugin="spaces")
    assert (await client.get(url, headers=workspace.headers())).json()["workspace"] == workspace.id
    assert (await client.get(url, headers=tenant.headers())).status_code == 422
    assert (await client.get(url, headers=workspace.headers("dave"))).status_code == 404
    await workspace.add_member("dave", "viewer")
    assert (await client.get(url, headers=workspace.headers("dave"))).status_code == 200
