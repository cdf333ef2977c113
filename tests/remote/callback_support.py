"""A real host on loopback (uvicorn in the test's own event loop) for the callback API tests.

The host loads the ``probe`` plugin (and ``spy``, another plugin in the same tenants) the way an
embedded host would; the tests then act as probe's remote process: they take context tokens the
host signs, verify them against its JWKS over HTTP, and call back with ``RemoteHost``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp

from plexica.app import create_app
from plexica.platform import Platform
from plexica.remote import ContextSigner, load_signer, parse_signing_key
from plexica.remote.context_tokens import KEY_FILE_NAME
from plexica.settings import Settings, load_settings
from plexica_sdk import hookimpl
from plexica_sdk.protocols import Host
from plexica_sdk.remote import JWKS_PATH, ContextVerifier
from plexica_sdk.remote.host import HostConnection, RemoteHost
from plexica_sdk.types import (
    Event,
    EventTypeDef,
    PermissionDef,
    PluginManifest,
    Principal,
    RoleDef,
    StorageNamespace,
    Subscription,
    TenantContext,
    TenantInfo,
)

__all__ = [
    "PROBE_REVISIONS",
    "EnvProbePlugin",
    "ProbePlugin",
    "ServedHost",
    "SpyPlugin",
    "anyio_backend",
    "remote_mode",
    "serve_host",
    "served",
]

#: probe's chain: a table with a serial id (its sequence is granted too), then a second table.
PROBE_REVISIONS = {
    "probe_0001": (
        "probe notes",
        """op.create_table(
    "probe_notes",
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("title", sa.String(200), nullable=False),
)""",
        'op.drop_table("probe_notes")',
    ),
    "probe_0002": (
        "probe tags",
        """op.create_table("probe_tags", sa.Column("tag", sa.String(50), primary_key=True))""",
        'op.drop_table("probe_tags")',
    ),
}

ITEM_SCHEMA = {"type": "object", "required": ["title"], "properties": {"title": {"type": "string"}}}


class ProbePlugin:
    """The plugin whose remote process the tests play."""

    def __init__(self, migrations: str | None = None) -> None:
        self.migrations = migrations

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(
            name="probe",
            version="1.0.0",
            permissions=(PermissionDef(key="probe:item:read"), PermissionDef(key="probe:item:write")),
            default_roles=(RoleDef(name="member", permissions=("probe:item:read",)),),
            event_types=(EventTypeDef(type="probe.item.created", schema=ITEM_SCHEMA),),
            storage=(StorageNamespace(name="files", max_bytes=64, content_types=("text/plain",)),),
            config_schema={"type": "object", "properties": {"greeting": {"type": "string", "default": "hi"}}},
        )

    @hookimpl
    def plexica_tenant_migrations(self) -> str | None:
        return self.migrations


class EnvProbePlugin(ProbePlugin):
    """Probe as the CLI loads it (``module:attribute``): its migrations from ``TEST_PROBE_MIGRATIONS``."""

    def __init__(self) -> None:
        super().__init__(os.environ.get("TEST_PROBE_MIGRATIONS"))


@attrs.define(eq=False)
class SpyPlugin:
    """Another plugin in the same tenants: receives probe's events, owns its own event type."""

    received: list[Event] = attrs.Factory(list)

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(name="spy", version="1.0.0", event_types=(EventTypeDef(type="spy.thing.done"),))

    @hookimpl
    def plexica_subscriptions(self) -> list[Subscription]:
        async def seen(event: Event, host: Host) -> None:
            self.received.append(event)

        return [Subscription(event_type="probe.item.created", handler=seen, name="seen")]


@attrs.define(eq=False)
class ServedHost:
    url: str
    app: Starlette
    settings: Settings
    spy: SpyPlugin
    tenants: dict[str, TenantInfo] = attrs.Factory(dict)

    @property
    def platform(self) -> Platform:
        platform: Platform = self.app.state.platform
        return platform

    @property
    def callbacks(self) -> str:
        return self.url + "/.plexica/host/v1"

    def signer(self, **options: Any) -> ContextSigner:
        """A signer with the host's own (development) keys; ``options`` e.g. a clock in the past."""
        if not options:
            found = load_signer(self.settings)
            assert found is not None
            return found
        data = json.loads((self.settings.data_dir / KEY_FILE_NAME).read_text(encoding="utf-8"))
        return ContextSigner([parse_signing_key(json.dumps(key)) for key in data["keys"]], **options)

    def context(self, slug: str, *, user: str | None = "u-1", roles: tuple[str, ...] = ("member",)) -> TenantContext:
        tenant = self.tenants[slug]
        principal = Principal(id=user, tenant_slug=slug, roles=roles) if user is not None else None
        return TenantContext(
            tenant_id=tenant.id, slug=slug, schema=tenant.schema, user=principal, trace_id="trace-0001-abcd"
        )

    def token(self, slug: str | None, *, plugin: str = "probe", **user: Any) -> str:
        return self.signer().issue(plugin, self.context(slug, **user) if slug is not None else None)

    async def remote_host(self, connection: HostConnection, slug: str, **user: Any) -> RemoteHost:
        """Probe's handle for one host call, as its server builds it: the token verified over HTTP first."""
        verifier = ContextVerifier("probe", self.url + JWKS_PATH)
        try:
            remote = await verifier.verify(self.token(slug, **user))
        finally:
            await verifier.aclose()
        return connection.host_for(remote)


def remote_mode(platform: Platform, name: str) -> None:
    """Mark ``name`` as a remote plugin of ``platform`` (what its remote registration records)."""
    loaded = platform.plugins.plugins[name]
    platform.plugins.plugins[name] = attrs.evolve(loaded, source=attrs.evolve(loaded.source, mode="remote"))


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def serve_host(
    data_dir: Path,
    *,
    plugins: tuple[object, ...] = (),
    database: Mapping[str, Any] | None = None,
    installs: Mapping[str, tuple[str, ...]] | None = None,
    remote: tuple[str, ...] = (),
) -> AsyncIterator[ServedHost]:
    """Serve a host with probe and spy (plus ``plugins``); ``installs``: plugins per tenant slug.

    ``remote``: plugins loaded as remote ones, as registering them with ``[[plugins.remote]]`` would.
    """
    settings = load_settings(
        environ={},
        environment="test",
        data_dir=str(data_dir),
        load_entry_points=False,
        database=dict(database or {}),
    )
    spy = SpyPlugin()
    probe = next((plugin for plugin in plugins if isinstance(plugin, ProbePlugin)), None)
    loaded = (*plugins, spy) if probe is not None else (ProbePlugin(), *plugins, spy)
    app = create_app(settings, plugins=loaded)
    for name in remote:
        remote_mode(app.state.platform, name)
    async with on_loopback(app) as url:
        served = ServedHost(url=url, app=app, settings=settings, spy=spy)
        plan = installs if installs is not None else {"acme": ("probe", "spy"), "globex": ("spy",)}
        tenants = served.platform.tenants
        for slug, names in plan.items():
            served.tenants[slug] = await tenants.provision(slug)  # installs every plugin
            for name in set(await tenants.installed_plugins(served.tenants[slug])) - set(names):
                await tenants.uninstall_plugin(slug, name)
        yield served


@contextlib.asynccontextmanager
async def on_loopback(app: ASGIApp) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn in this event loop on a free loopback port; its base URL."""
    sock = _socket()
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="on", log_config=None, log_level="warning", access_log=False, http="h11")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(1500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.02)
        if not server.started:
            raise RuntimeError("the server did not start")
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """One event loop per module, so a module shares one served host."""
    return "asyncio"


@pytest.fixture(scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory, anyio_backend: str) -> AsyncIterator[ServedHost]:
    """A SQLite host for the whole module: probe in acme; spy in acme and globex."""
    async with serve_host(Path(tmp_path_factory.mktemp("host"))) as host:
        yield host
