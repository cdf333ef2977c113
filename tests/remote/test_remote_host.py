"""``RemoteHost`` against a real host on loopback: every method behaves as the embedded handle's.

Each test takes a context token the host signed for probe, verifies it against the host's JWKS
over HTTP, and uses the handle probe's server would build from it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator

import httpx2
import pytest

from plexica_sdk.errors import (
    EventError,
    NotFoundError,
    PermissionDeniedError,
    SettingsError,
    ValidationError,
)
from plexica_sdk.protocols import Cache, Host, PluginObjects
from plexica_sdk.remote.host import HostConnection
from tests.remote.callback_support import ServedHost, anyio_backend, served

__all__ = ["anyio_backend", "served"]

pytestmark = pytest.mark.anyio


@pytest.fixture
async def connection(served: ServedHost) -> AsyncIterator[HostConnection]:
    connection = HostConnection(served.url, plugin="probe")
    yield connection
    await connection.aclose()


async def test_it_is_a_host(served: ServedHost, connection: HostConnection) -> None:
    host = await served.remote_host(connection, "acme")
    assert isinstance(host, Host)
    assert isinstance(host.cache, Cache) and isinstance(host.objects, PluginObjects)
    assert host.plugin == "probe" and host.tenant.slug == "acme"
    assert host.tenant.user is not None and host.tenant.user.roles == ("member",)


async def test_authorize_and_require_decide_for_the_calls_user(served: ServedHost, connection: HostConnection) -> None:
    host = await served.remote_host(connection, "acme")
    assert (await host.authorize("probe:item:read")).allowed
    denied = await host.authorize("probe:item:write")
    assert not denied.allowed and denied.reason
    await host.require("probe:item:read")
    with pytest.raises(PermissionDeniedError):
        await host.require("probe:item:write")
    nobody = await served.remote_host(connection, "acme", user=None)
    assert not (await nobody.authorize("probe:item:read")).allowed


async def test_publish_is_validated_like_an_embedded_publish(served: ServedHost, connection: HostConnection) -> None:
    host = await served.remote_host(connection, "acme")
    event = await host.publish("probe.item.created", {"title": "first"}, subject="item-1")
    acme = served.tenants["acme"]
    assert (event.source, event.tenantid, event.userid, event.subject) == ("/plugins/probe", acme.id, "u-1", "item-1")
    for _ in range(250):  # the in-process bus delivers to spy's subscription
        if any(seen.id == event.id for seen in served.spy.received):
            break
        await asyncio.sleep(0.02)
    assert any(seen.id == event.id and seen.data == {"title": "first"} for seen in served.spy.received)
    with pytest.raises(EventError):
        await host.publish("probe.item.created", {"no": "title"})  # fails its schema
    with pytest.raises(EventError):
        await host.publish("spy.thing.done", {})  # another plugin's type
    with pytest.raises(EventError):
        await host.publish("probe.item.vanished", {})  # undeclared


async def test_mark_processed_without_a_session_records_once(served: ServedHost, connection: HostConnection) -> None:
    host = await served.remote_host(connection, "acme")
    event = await host.publish("probe.item.created", {"title": "again"})
    assert await host.mark_processed(event, session=None) is True
    assert await host.mark_processed(event, session=None) is False
    with pytest.raises(EventError):
        await host.publish("probe.item.created", {"title": "x"}, session=object())


async def test_the_cache_is_the_plugins_prefix_of_the_tenant(served: ServedHost, connection: HostConnection) -> None:
    cache = (await served.remote_host(connection, "acme")).cache
    await cache.set("greeting", b"\x00hello", ttl=60)
    assert await cache.get("greeting") == b"\x00hello"
    # Exactly where the embedded handle keeps it, and nowhere another plugin can see.
    shared = served.platform.cache
    assert await shared.get("tenant:{acme}:plugin:probe:greeting") == b"\x00hello"
    spy = served.platform.host_for("spy", served.context("acme")).cache
    assert await spy.get("greeting") is None
    assert await cache.incr("hits", 2) == 2 and await cache.incr("hits") == 3
    await cache.set("page:1", b"a")
    await cache.set("page:2", b"b")
    assert await cache.delete_prefix("page:") == 2
    assert await cache.delete("greeting", "hits", "missing") == 2
    assert await cache.get("greeting") is None


async def test_objects_stay_in_the_plugins_namespaces(served: ServedHost, connection: HostConnection) -> None:
    objects = (await served.remote_host(connection, "acme")).objects
    info = await objects.put("files/a.txt", b"hello", content_type="text/plain")
    assert (info.key, info.size) == ("files/a.txt", 5)

    async def chunks() -> AsyncIterator[bytes]:
        yield b"str"
        yield b"eamed"

    await objects.put("files/b.txt", chunks(), content_type="text/plain")
    assert await objects.get("files/b.txt") == b"streamed"
    assert b"".join([chunk async for chunk in await objects.stream("files/a.txt")]) == b"hello"
    assert (await objects.head("files/a.txt")).content_type == "text/plain"
    assert [found.key for found in await objects.list("files/")] == ["files/a.txt", "files/b.txt"]
    url = await objects.presigned_url("files/a.txt", expires_in=60)
    async with httpx2.AsyncClient() as browser:  # whoever holds the URL gets that one object
        absolute = url if url.startswith("http") else served.url + url  # local storage: app-relative, as embedded
        assert (await browser.get(absolute)).content == b"hello"
    await objects.delete("files/a.txt")
    with pytest.raises(NotFoundError):
        await objects.get("files/a.txt")
    with pytest.raises(NotFoundError):
        await objects.stream("files/a.txt")
    with pytest.raises(ValidationError):
        await objects.put("elsewhere/x.txt", b"x", content_type="text/plain")  # not a namespace of probe's
    with pytest.raises(ValidationError):
        await objects.put("files/../../x.txt", b"x", content_type="text/plain")
    with pytest.raises(ValidationError):
        await objects.put("files/big.txt", b"x" * 65, content_type="text/plain")  # over the namespace's 64 bytes
    with pytest.raises(ValidationError):
        await objects.put("files/c.png", b"x", content_type="image/png")


async def test_config_is_the_tenants_validated_configuration(served: ServedHost, connection: HostConnection) -> None:
    host = await served.remote_host(connection, "acme")
    assert await host.config() == {"greeting": "hi"}
    await served.platform.plugin_config.set("acme", "probe", {"greeting": "hello"})
    assert await host.config() == {"greeting": "hello"}
    await served.platform.plugin_config.set("acme", "probe", {})


async def test_a_background_handle_acts_by_service_credential(served: ServedHost) -> None:
    issued = await served.platform.remote_credentials.create("probe")
    connection = HostConnection(served.url, plugin="probe", credential=issued.value)
    try:
        host = await connection.for_tenant("acme")
        assert host.tenant.tenant_id == served.tenants["acme"].id and host.tenant.user is None
        await host.cache.set("job", b"done")
        assert await served.platform.cache.get("tenant:{acme}:plugin:probe:job") == b"done"
        assert not (await host.authorize("probe:item:read")).allowed  # no user: nobody to decide for
        with pytest.raises(PermissionDeniedError):
            await connection.for_tenant("globex")  # probe is not installed there
        with pytest.raises(SettingsError):
            await HostConnection(served.url).for_tenant("acme")
    finally:
        await connection.aclose()
        await served.platform.remote_credentials.revoke("probe")


async def test_a_session_needs_the_plugins_database_url(served: ServedHost, connection: HostConnection) -> None:
    host = await served.remote_host(connection, "acme")
    with pytest.raises(SettingsError, match="PLEXICA_PLUGIN_DATABASE_URL"):
        host.session()


# The plugin server as ``python -m plexica_sdk.remote`` builds it, RemoteHost wired in, in a fresh interpreter.
_PROBE = """
import json, sys
from plexica_sdk.remote.run import build_app, load_plugin
app = build_app(load_plugin("plexica_plugin_notes:NotesPlugin"), "http://127.0.0.1:1",
                environ={"PLEXICA_PLUGIN_DATABASE_URL": "postgresql+asyncpg://notes@127.0.0.1:1/db"})
roots = sorted({name.split(".")[0] for name in sys.modules})
print(json.dumps({"roots": roots, "host": type(app.state.host_connection).__name__}))
"""


def test_the_served_plugin_gets_remote_hosts_without_importing_the_host() -> None:
    completed = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=False, timeout=60)
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report["host"] == "HostConnection"
    assert [root for root in report["roots"] if root in ("plexica", "redis", "aiokafka", "alembic", "authlib")] == []
