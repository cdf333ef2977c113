"""The proxy's side of announcing to a restarted process, against a real server on loopback.

The server is swapped for a new ``create_app`` of the same plugin (a new boot id, as a restarted
process has); an "old SDK" server sends no boot id, and is never announced to again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx2
import pytest
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plexica.remote import ContextSigner
from plexica.remote.client import RemoteClient
from plexica.remote.proxy import RemotePlugin
from plexica.remote.snapshot import Snapshot
from plexica.settings import RemotePluginSettings
from plexica_sdk import PluginManifest, hookimpl
from plexica_sdk.remote import ContextVerifier, create_app
from plexica_sdk.remote.wire import BOOT_HEADER, HEALTH_PATH
from tests.remote.callback_support import on_loopback
from tests.sdk.remote.tokens import jwks_of, new_key

pytestmark = pytest.mark.anyio


class Starter:
    """Counts its plexica_host_started calls."""

    def __init__(self) -> None:
        self.started = 0

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(name="starter", version="1.0.0")

    @hookimpl
    def plexica_host_started(self) -> None:
        self.started += 1


class OldSdk:
    """A server of an SDK before boot ids: no ``Plexica-Boot``, no ``boot_id`` in its health answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == HEALTH_PATH:
            body = {"status": "ok", "plugin": "starter", "version": "1.0.0", "protocol": 1, "hooks": []}
            await JSONResponse(body, headers={"Plexica-Protocol": "1"})(scope, receive, send)
            return

        async def without_boot(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [(k, v) for k, v in message["headers"] if k != BOOT_HEADER.lower().encode()]
            await send(message)

        await self.app(scope, receive, without_boot)


class Switch:
    """The plugin's address; ``restart`` puts a new server (a new process) behind it."""

    def __init__(self, plugin: Starter, key: Any, *, old: bool = False) -> None:
        self.plugin, self.key, self.old = plugin, key, old
        self.restart()

    def restart(self) -> None:
        async def jwks() -> Mapping[str, Any]:
            return jwks_of(self.key)

        app = create_app(self.plugin, verifier=ContextVerifier("starter", jwks))
        self.app: ASGIApp = OldSdk(app) if self.old else app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


async def _proxy(url: str, client: RemoteClient) -> RemotePlugin:
    async with httpx2.AsyncClient(base_url=url) as http:
        manifest = (await http.get("/.plexica/manifest")).json()
        contributions = (await http.get("/.plexica/contributions")).json()
    snapshot = Snapshot(url=url, manifest=manifest, contributions=contributions, migrations=None, fetched_at="now")
    return RemotePlugin(snapshot, client)


@pytest.fixture(params=[False, True], ids=["boot-ids", "old-sdk"])
async def served(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Switch, RemotePlugin]]:
    key = new_key()
    switch = Switch(Starter(), key, old=request.param)
    async with on_loopback(switch) as url:
        config = RemotePluginSettings(name="starter", url=url, retries=0)
        async with RemoteClient(config, ContextSigner([key])) as client:
            proxy = await _proxy(url, client)
            try:
                yield switch, proxy
            finally:
                await proxy.aclose()


async def _settled(proxy: RemotePlugin) -> None:
    for _ in range(200):
        if proxy._again is None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the announce did not end")


async def test_a_new_process_is_announced_to_once_and_an_old_sdk_never(served: tuple[Switch, RemotePlugin]) -> None:
    switch, proxy = served
    plugin = switch.plugin
    await proxy.plexica_host_started(None)  # type: ignore[attr-defined]  # as the host's start-up calls it
    assert plugin.started == 1
    await proxy.check()
    await _settled(proxy)
    assert plugin.started == 1  # the process announced to

    switch.restart()
    document = await proxy.check()
    await _settled(proxy)
    if switch.old:
        assert "boot_id" not in document and proxy.client.boot_id is None
        assert plugin.started == 1  # no boot id: nothing tells a restart, nothing is called again
    else:
        assert document["boot_id"] == proxy.client.boot_id
        assert plugin.started == 2
        await asyncio.gather(*(proxy.check() for _ in range(5)))  # concurrent probes: no second call
        await _settled(proxy)
        assert plugin.started == 2


async def test_no_announce_once_the_host_is_stopping(served: tuple[Switch, RemotePlugin]) -> None:
    switch, proxy = served
    await proxy.plexica_host_started(None)  # type: ignore[attr-defined]
    await proxy.plexica_host_stopping(None)  # type: ignore[attr-defined]  # the plugin implements none: local
    switch.restart()
    await proxy.check()
    await _settled(proxy)
    assert switch.plugin.started == 1 and not proxy.started


async def test_the_wire_carries_the_boot_id() -> None:
    key = new_key()
    switch = Switch(Starter(), key)
    async with on_loopback(switch) as url, httpx2.AsyncClient(base_url=url) as http:
        health = await http.get(HEALTH_PATH)
        missing = await http.get("/nowhere")  # every answer, problems too
        boot = health.json()["boot_id"]
        assert health.headers[BOOT_HEADER] == boot == missing.headers[BOOT_HEADER]
        switch.restart()
        assert (await http.get(HEALTH_PATH)).headers[BOOT_HEADER] != boot
