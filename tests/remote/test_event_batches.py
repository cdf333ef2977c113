"""Event deliveries that wait at the same time share one call, over real HTTP; each keeps its own outcome.

The host's :class:`RemoteClient` against the SDK's plugin server under uvicorn on loopback, with
real context tokens: deliveries of one tenant batch into ``POST /.plexica/events/batch``, a
handler's failure reaches only its own caller, tenants never share a call, each event keeps its
trace id, and a plugin that does not serve batches gets single deliveries.
"""

from __future__ import annotations

import asyncio
import collections
import socket
from collections.abc import AsyncIterator, Mapping
from typing import Any

import attrs
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from plexica.remote import ContextSigner
from plexica.remote.client import RemoteClient
from plexica.settings import RemotePluginSettings
from plexica_sdk import Event, Host, PluginManifest, Subscription, context, hookimpl
from plexica_sdk.errors import PluginCallError, PluginUnavailableError, ValidationError
from plexica_sdk.remote import ContextVerifier, create_app
from plexica_sdk.remote.host import HostConnection
from plexica_sdk.remote.wire import EVENT_BATCH_PATH, EVENTS_PATH, MAX_EVENT_BATCH
from plexica_sdk.types import TenantContext
from tests.remote.callback_support import on_loopback
from tests.sdk.remote.tokens import jwks_of, new_key

pytestmark = pytest.mark.anyio

ACME = TenantContext(tenant_id="t-acme", slug="acme", schema="tenant_acme")
GLOBEX = TenantContext(tenant_id="t-globex", slug="globex", schema="tenant_globex")


class Batchy:
    """Records each handler run as (event id, tenant id of the context, trace id); fails on request."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, str, str | None]] = []

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(name="batchy", version="1.0.0")

    @hookimpl
    def plexica_subscriptions(self) -> list[Subscription]:
        return [Subscription(event_type="batchy.item.created", handler=self.on_item, name="on_item")]

    async def on_item(self, event: Event, host: Host) -> None:
        ctx = context.current()
        await asyncio.sleep(0.002)  # a handler that takes a moment, as real ones do
        self.runs.append((event.id, ctx.tenant_id, ctx.trace_id))
        outcome = event.data.get("outcome") if isinstance(event.data, Mapping) else None
        if outcome == "invalid":
            raise ValidationError("this item is refused", field="title")
        if outcome == "bug":
            raise RuntimeError("the handler has a bug")


class Calls:
    """ASGI middleware counting the plugin server's requests by path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.paths: collections.Counter[str] = collections.Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths[scope["path"]] += 1
        await self.app(scope, receive, send)


class Served:
    def __init__(self, plugin: Batchy, calls: Calls, client: RemoteClient) -> None:
        self.plugin, self.calls, self.client = plugin, calls, client


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    key = new_key()

    async def jwks() -> Mapping[str, Any]:
        return jwks_of(key)

    plugin = Batchy()
    connection = HostConnection("http://127.0.0.1:9")  # the real remote handle; the handler never calls it
    calls = Calls(create_app(plugin, verifier=ContextVerifier("batchy", jwks), host_factory=connection.host_for))
    try:
        async with on_loopback(calls) as url:
            config = RemotePluginSettings(name="batchy", url=url, retries=0)
            async with RemoteClient(config, ContextSigner([key])) as client:
                client.use_event_batches(True)
                yield Served(plugin, calls, client)
    finally:
        await connection.aclose()


def item(tenant: TenantContext, number: int, outcome: str = "ok") -> Event:
    return Event(
        type="batchy.item.created",
        source="/plugins/batchy",
        data={"number": number, "outcome": outcome},
        tenantid=tenant.tenant_id,
    )


async def outcome_of(client: RemoteClient, event: Event, ctx: TenantContext) -> BaseException | None:
    try:
        await client.deliver("on_item", event, ctx, ())
    except Exception as exc:
        return exc
    return None


async def test_concurrent_deliveries_share_calls_and_each_caller_gets_its_own_outcome(served: Served) -> None:
    outcomes = {10: "invalid", 20: "bug"}
    events = [item(ACME, n, outcomes.get(n, "ok")) for n in range(200)]
    results = await asyncio.gather(*(outcome_of(served.client, event, ACME) for event in events))

    assert sorted(run[0] for run in served.plugin.runs) == sorted(event.id for event in events)  # each ran once
    assert all(tenant == ACME.tenant_id for _, tenant, _ in served.plugin.runs)
    failed = {n: result for n, result in enumerate(results) if result is not None}
    assert set(failed) == {10, 20}
    assert isinstance(failed[10], ValidationError) and failed[10].field == "title"
    assert isinstance(failed[20], PluginCallError) and failed[20].hook == "subscription on_item"
    batches = served.calls.paths[EVENT_BATCH_PATH]
    assert -(-200 // MAX_EVENT_BATCH) <= batches < 50  # batched, never above the batch size
    assert served.calls.paths[EVENTS_PATH] == 0


async def test_tenants_never_share_a_call_and_each_event_keeps_its_trace(served: Served) -> None:
    deliveries = [
        (item(tenant, n), attrs.evolve(tenant, trace_id=f"{n:032x}")) for n in range(40) for tenant in (ACME, GLOBEX)
    ]
    results = await asyncio.gather(*(outcome_of(served.client, event, ctx) for event, ctx in deliveries))

    assert results == [None] * len(deliveries)  # the server refuses a batch holding another tenant's event
    expected = {event.id: (ctx.tenant_id, ctx.trace_id) for event, ctx in deliveries}
    assert {run[0]: (run[1], run[2]) for run in served.plugin.runs} == expected


async def test_a_lone_delivery_is_sent_at_once_and_the_lane_is_dropped(served: Served) -> None:
    assert await outcome_of(served.client, item(ACME, 1), ACME) is None
    assert served.calls.paths[EVENT_BATCH_PATH] == 1 and not served.client._lanes


async def test_a_plugin_without_batches_gets_single_deliveries(served: Served) -> None:
    served.client.use_event_batches(False)
    results = await asyncio.gather(*(outcome_of(served.client, item(ACME, n), ACME) for n in range(5)))
    assert results == [None] * 5
    assert served.calls.paths[EVENTS_PATH] == 5 and served.calls.paths[EVENT_BATCH_PATH] == 0


async def test_a_cancelled_caller_does_not_disturb_the_others(served: Served) -> None:
    waiting = [asyncio.create_task(outcome_of(served.client, item(ACME, n), ACME)) for n in range(20)]
    await asyncio.sleep(0)
    waiting[3].cancel()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert isinstance(results[3], asyncio.CancelledError)
    assert [result for n, result in enumerate(results) if n != 3] == [None] * 19


async def test_an_unreachable_plugin_fails_every_delivery_of_the_call() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    config = RemotePluginSettings(name="batchy", url=f"http://127.0.0.1:{port}", retries=0, breaker_failures=100)
    async with RemoteClient(config, ContextSigner([new_key()])) as client:
        client.use_event_batches(True)
        results = await asyncio.gather(*(outcome_of(client, item(ACME, n), ACME) for n in range(10)))
    assert all(isinstance(result, PluginUnavailableError) for result in results), results
