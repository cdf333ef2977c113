"""A real host for plugin tests, started in-process: settings, tenants, tokens, an HTTP client.

Nothing here imports the host (``plexica``) at import time: the pytest plugin that uses this
module is loaded in every pytest run where the SDK is installed, so the host is imported only when
a test asks for a running host.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, final

import attrs

from plexica_sdk.http import WORKSPACE_HEADER
from plexica_sdk.testing.events import EventLog, EventRecorder
from plexica_sdk.types import Event, TenantContext, TenantInfo

if TYPE_CHECKING:
    import httpx2
    from starlette.applications import Starlette

    from plexica.platform import Platform
    from plexica.settings import Settings
    from plexica_sdk.testing.remote import RemotePluginProcess

__all__ = [
    "SERVICE_VARIABLES",
    "ProvisionedTenant",
    "ProvisionedWorkspace",
    "RunningHost",
    "build_settings",
    "host_environ",
    "plugin_name",
    "process_environ",
    "require_host",
    "start_host",
]

#: The project's service variables (``scripts/services.sh`` writes them) and the settings each sets.
SERVICE_VARIABLES: Final[Mapping[str, Mapping[str, str]]] = {
    "postgres": {"TEST_DATABASE_URL": "PLEXICA_DATABASE__URL"},
    "redis": {"TEST_REDIS_URL": "PLEXICA_CACHE__REDIS_URL"},
    "kafka": {"TEST_KAFKA_BOOTSTRAP": "PLEXICA_EVENTS__BOOTSTRAP_SERVERS"},
    "s3": {
        "TEST_S3_ENDPOINT": "PLEXICA_STORAGE__S3_ENDPOINT",
        "TEST_S3_ACCESS_KEY": "PLEXICA_STORAGE__S3_ACCESS_KEY",
        "TEST_S3_SECRET_KEY": "PLEXICA_STORAGE__S3_SECRET_KEY",
        "TEST_S3_REGION": "PLEXICA_STORAGE__S3_REGION",
    },
}
_SERVICE_EXTRAS: Final[Mapping[str, Mapping[str, str]]] = {
    # A one-broker test cluster; consumers that notice a new tenant's topics within a second.
    "kafka": {
        "PLEXICA_EVENTS__BACKEND": "kafka",
        "PLEXICA_EVENTS__REPLICATION_FACTOR": "1",
        "PLEXICA_EVENTS__KAFKA__SESSION_TIMEOUT_MS": "2000",
        "PLEXICA_EVENTS__KAFKA__HEARTBEAT_INTERVAL_MS": "300",
        "PLEXICA_EVENTS__KAFKA__METADATA_MAX_AGE_MS": "1000",
    },
    "s3": {"PLEXICA_STORAGE__BACKEND": "s3"},
}
_TEST_PREFIX: Final = "PLEXICA_TEST_"
#: The core API a test host's workspaces are made through.
_CORE_API: Final = "/api/core/v1"


def host_environ(environ: Mapping[str, str], services: Iterable[str]) -> dict[str, str]:
    """The ``PLEXICA_*`` variables the test host's settings are loaded from.

    Each named service whose ``TEST_*`` variables are all set switches its backend to the real
    server; then every ``PLEXICA_TEST_<SECTION>__<KEY>`` becomes ``PLEXICA_<SECTION>__<KEY>``
    (the author's own overrides win). The process's own ``PLEXICA_*`` settings are ignored on
    purpose: a test must never reach a deployment's database.

    Args:
        environ: the process environment.
        services: the services that may be used (``postgres``, ``redis``, ``kafka``, ``s3``).
    """
    env: dict[str, str] = {}
    for service in services:
        variables = SERVICE_VARIABLES.get(service)
        if variables is None:
            known = ", ".join(SERVICE_VARIABLES)
            raise ValueError(f"unknown service {service!r} for the test host (known: {known})")
        if all(environ.get(var) for var in variables):
            env.update({setting: environ[var] for var, setting in variables.items()})
            env.update(_SERVICE_EXTRAS.get(service, {}))
    if "PLEXICA_EVENTS__BACKEND" in env:
        # Tansu, the project's test broker, lacks the idempotent producer; a real Kafka sets this to 1.
        env["PLEXICA_EVENTS__ENABLE_IDEMPOTENCE"] = "true" if environ.get("TEST_KAFKA_IDEMPOTENCE") == "1" else "false"
    for name, value in environ.items():
        if name.startswith(_TEST_PREFIX) and "__" in name:
            env["PLEXICA_" + name.removeprefix(_TEST_PREFIX)] = value
    return env


def plugin_name(plugin: object) -> str:
    """The name in ``plugin``'s manifest (what its routes are mounted under).

    Raises:
        TypeError: the object has no ``plexica_manifest`` hook.
    """
    manifest = getattr(plugin, "plexica_manifest", None)
    if manifest is None:
        raise TypeError(f"{plugin!r} is not a Plexica plugin: it has no plexica_manifest hook")
    return str(manifest().name)


@final
@attrs.define(eq=False)
class ProvisionedTenant:
    """A tenant of the test host, provisioned with every loaded plugin installed."""

    info: TenantInfo
    host: RunningHost

    @property
    def slug(self) -> str:
        return self.info.slug

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def context(self) -> TenantContext:
        """The tenant context host calls for this tenant run in."""
        return TenantContext(tenant_id=self.info.id, slug=self.info.slug, schema=self.info.schema, plan=self.info.plan)

    def token(self, user: str = "alice", roles: Iterable[str] = ("member",), **claims: Any) -> str:
        """A signed access token of ``user`` with tenant-wide ``roles`` in this tenant."""
        return self.host.token_for(user, roles, self, **claims)

    def headers(
        self,
        user: str = "alice",
        roles: Iterable[str] = ("member",),
        *,
        workspace: ProvisionedWorkspace | str | None = None,
        **claims: Any,
    ) -> dict[str, str]:
        """``Authorization`` headers for requests as ``user`` (see :meth:`token`).

        ``workspace`` (a workspace or its id) adds ``X-Workspace-ID``: the request runs in it.
        """
        headers = {"Authorization": f"Bearer {self.token(user, roles, **claims)}"}
        if workspace is not None:
            headers[WORKSPACE_HEADER] = workspace if isinstance(workspace, str) else workspace.id
        return headers

    async def make_workspace(
        self, name: str | None = None, *, admin: str = "alice", members: Mapping[str, str] | None = None
    ) -> ProvisionedWorkspace:
        """Create a workspace through the core API, as ``admin`` (its first admin) would.

        Args:
            name: its name (default: a fresh random one).
            admin: the user who creates it, and so administers it.
            members: more users and their workspace roles (``admin``, ``member``, ``viewer``).
        """
        await self._admit(admin)
        client = self.host.client
        body = {"name": name or f"ws-{uuid.uuid4().hex[:10]}"}
        created = await client.post(f"{_CORE_API}/workspaces", json=body, headers=self.headers(admin))
        _expect(created, 201, f"creating a workspace in tenant {self.slug!r} as {admin!r}")
        workspace = ProvisionedWorkspace(created.json()["id"], body["name"], self, admin)
        for user, role in (members or {}).items():
            await workspace.add_member(user, role)
        return workspace

    async def _admit(self, user: str) -> None:
        """Make ``user`` known to the tenant: a user's first request creates their profile."""
        response = await self.host.client.get(f"{_CORE_API}/me", headers=self.headers(user))
        _expect(response, 200, f"admitting user {user!r} to tenant {self.slug!r}")


def _expect(response: Any, status: int, doing: str) -> None:
    if response.status_code != status:
        raise AssertionError(f"{doing}: got {response.status_code}: {response.text[:500]}")


@final
@attrs.define(eq=False)
class ProvisionedWorkspace:
    """A workspace of a test tenant (the ``workspace`` fixture, :meth:`ProvisionedTenant.make_workspace`).

    Attributes:
        id: what ``X-Workspace-ID`` carries.
        name: its name.
        tenant: the tenant it belongs to.
        admin: the user who created it.
    """

    id: str
    name: str
    tenant: ProvisionedTenant
    admin: str

    def headers(self, user: str = "alice", roles: Iterable[str] = ("member",), **claims: Any) -> dict[str, str]:
        """Headers for requests as ``user`` in this workspace: ``Authorization`` and ``X-Workspace-ID``."""
        return self.tenant.headers(user, roles, workspace=self, **claims)

    async def add_member(self, user: str, role: str = "member") -> None:
        """Add ``user`` with workspace ``role`` (``admin``, ``member``, ``viewer``), as the workspace's admin."""
        await self.tenant._admit(user)
        added = await self.tenant.host.client.post(
            f"{_CORE_API}/workspaces/{self.id}/members",
            json={"user_id": user, "role": role},
            headers=self.tenant.headers(self.admin),
        )
        _expect(added, 201, f"adding {user!r} as {role} to workspace {self.id}")


@final
@attrs.define(eq=False)
class RunningHost:
    """A host app running in-process with the plugins under test, and a client talking to it.

    Attributes:
        app: the Starlette app (its lifespan is running).
        client: an ``httpx2.AsyncClient`` on the app (``base_url`` ``http://testserver``).
        events: every event delivered so far (the ``published_events`` fixture).
        plugins: the names of the plugins under test, the first being the default for
            :meth:`url`.
    """

    app: Starlette
    client: httpx2.AsyncClient
    events: EventLog
    plugins: tuple[str, ...]
    tenants: list[ProvisionedTenant] = attrs.Factory(list)

    @property
    def platform(self) -> Platform:
        """The host's services (tenants, database, cache, bus...): for assertions, not for plugins."""
        return self.app.state.platform  # type: ignore[no-any-return]

    def url(self, path: str = "", *, plugin: str | None = None) -> str:
        """The URL of a plugin route: ``/api/plugins/{plugin}{path}``."""
        return f"/api/plugins/{plugin or self.plugins[0]}{path}"

    def token_for(
        self,
        user: str = "alice",
        roles: Iterable[str] = ("member",),
        tenant: ProvisionedTenant | str | None = None,
        **claims: Any,
    ) -> str:
        """A token the host accepts: ``user`` with tenant-wide ``roles`` in ``tenant``.

        Args:
            user: the subject (also the username).
            roles: tenant roles (the plugins' default roles, ``tenant_admin``...).
            tenant: the tenant or its slug; default: the first tenant made.
            claims: more ``DevIssuer.mint`` arguments (``email``, ``expires_in``, ``extra_claims``).
        """
        if tenant is None:
            if not self.tenants:
                raise LookupError("token_for needs a tenant: make one first (the `tenant` fixture)")
            tenant = self.tenants[0]
        slug = tenant if isinstance(tenant, str) else tenant.slug
        issuer = self.platform.dev_issuer
        if issuer is None:
            raise LookupError("the test host has no development token issuer (Keycloak is configured)")
        return issuer.mint(realm=f"tenant-{slug}", subject=user, username=user, roles=list(roles), **claims)

    def admin_token(self) -> str:
        """A platform super-admin token (for ``/api/admin`` routes)."""
        issuer = self.platform.dev_issuer
        if issuer is None:
            raise LookupError("the test host has no development token issuer (Keycloak is configured)")
        return issuer.mint(realm="plexica-platform", subject="root", roles=["super_admin"])

    async def make_tenant(self, slug: str | None = None, *, plan: str = "standard") -> ProvisionedTenant:
        """Provision a tenant (default slug: a fresh random one) with every loaded plugin installed.

        Tenants made here are deleted when the host stops, so a shared database keeps no test data.
        """
        info = await self.platform.tenants.provision(slug or f"t{uuid.uuid4().hex[:12]}", plan=plan)
        installed = await self.platform.tenants.installed_plugins(info)
        missing = [name for name in self.plugins if name not in installed]
        if missing:
            raise AssertionError(f"tenant {info.slug!r} was provisioned without plugin(s) {missing}")
        tenant = ProvisionedTenant(info, self)
        self.tenants.append(tenant)
        return tenant

    async def wait_for_event(
        self, event_type: str, *, timeout: float = 5.0, tenant: ProvisionedTenant | str | None = None, **kwargs: Any
    ) -> Event:
        """Wait until an ``event_type`` event is delivered (see :meth:`EventLog.wait_for`)."""
        slug = tenant.slug if isinstance(tenant, ProvisionedTenant) else tenant
        return await self.events.wait_for(event_type, timeout=timeout, tenant=slug, **kwargs)

    async def _delete_tenants(self) -> None:
        for tenant in reversed(self.tenants):
            await self.platform.tenants.delete(tenant.slug)
        self.tenants.clear()


def require_host() -> None:
    """Fail with the fix when only ``plexica-sdk`` is installed: the host fixtures run a real host.

    Raises:
        ModuleNotFoundError: ``plexica`` is not importable.
    """
    import importlib.util

    if importlib.util.find_spec("plexica") is None:
        raise ModuleNotFoundError(
            "the plexica_sdk.testing host fixtures run a Plexica host, and only plexica-sdk is installed: "
            "add `plexica` to the plugin's tests dependency group (FakeHost needs only the SDK)",
            name="plexica",
        )


def build_settings(data_dir: Path, environ: Mapping[str, str], **overrides: Any) -> Settings:
    """The test host's settings: embedded defaults in ``data_dir``, then ``environ``, then ``overrides``.

    Raises:
        ModuleNotFoundError: the host (``plexica``) is not installed (:func:`require_host`).
    """
    require_host()
    from plexica.settings import load_settings

    overrides.setdefault("data_dir", str(data_dir))
    overrides.setdefault("load_entry_points", False)
    overrides.setdefault("environment", "test")
    return load_settings(environ=environ, **overrides)


@contextlib.asynccontextmanager
async def start_host(
    plugins: Sequence[object], settings: Settings, names: Sequence[str], *, record_events: bool = True
) -> AsyncIterator[RunningHost]:
    """Run a host with ``plugins`` (and the event spy) until the block ends.

    Args:
        plugins: the objects the host loads (the plugin under test as its mode made it).
        settings: the host settings.
        names: the names of the plugins under test.
        record_events: load the event spy (``RunningHost.events`` stays empty without it).
    """
    import httpx2

    from plexica import create_app
    from plexica_sdk.testing.remote import RemotePluginProcess

    remote = [plugin for plugin in plugins if isinstance(plugin, RemotePluginProcess)]
    embedded = [plugin for plugin in plugins if not isinstance(plugin, RemotePluginProcess)]
    log = EventLog()
    spy = [EventRecorder.for_plugins(log, names)] if record_events else []
    app = create_app(_with_remote(settings, remote), plugins=[*embedded, *spy])
    async with app.router.lifespan_context(app), contextlib.AsyncExitStack() as served:
        for process in remote:
            await served.enter_async_context(_serve_for(app, process))
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
            running = RunningHost(app, client, log, tuple(names))
            try:
                yield running
            finally:
                # A shared database (PostgreSQL) must not keep test tenants; SQLite files go with tmp_path.
                if settings.database.url is not None:
                    await running._delete_tenants()


def _with_remote(settings: Settings, remote: Sequence[RemotePluginProcess]) -> Settings:
    """``settings`` with each remote plugin in ``[[plugins.remote]]``."""
    if not remote:
        return settings
    from plexica.settings import RemotePluginSettings

    entries = tuple(RemotePluginSettings(name=process.name, url=process.url) for process in remote)
    return attrs.evolve(settings, remote=attrs.evolve(settings.remote, plugins=(*settings.remote.plugins, *entries)))


@contextlib.asynccontextmanager
async def _serve_for(app: Starlette, process: RemotePluginProcess) -> AsyncIterator[None]:
    """Serve ``app`` where ``process`` calls back, and give the plugin its service credential.

    On PostgreSQL the credential's secret is also the password of the plugin's database role
    (``plexica remote credentials create`` prints the same two variables).
    """
    import asyncio

    import uvicorn
    from sqlalchemy.engine import make_url

    from plexica_sdk.errors import ConflictError
    from plexica_sdk.remote.host import CREDENTIAL_ENV, DATABASE_URL_ENV

    config = uvicorn.Config(app, lifespan="off", log_config=None, log_level="warning", access_log=False, http="h11")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[process.host_socket]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the test host's server stopped before it started")
            await asyncio.sleep(0.01)
        platform = app.state.platform
        try:
            issued = await platform.remote_credentials.create(process.name)
        except ConflictError:  # left by an earlier host on a shared database
            issued = await platform.remote_credentials.rotate(process.name)
        environ = {CREDENTIAL_ENV: issued.value}
        url = platform.settings.database.url
        if platform.db_roles is not None and url is not None:
            role = await platform.db_roles.set_login(process.name, issued.secret)
            environ[DATABASE_URL_ENV] = (
                make_url(url).set(username=role, password=issued.secret).render_as_string(hide_password=False)
            )
        await process.restart(environ)
        # The first process answered plexica_host_started; the restarted one starts its own work.
        (await platform.announce_started(only=[process.name])).raise_first()
        try:
            yield
        finally:
            await process.stop()
            await platform.remote_credentials.revoke(process.name)
            if platform.db_roles is not None:
                await platform.db_roles.set_login(process.name, None)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


def process_environ() -> Mapping[str, str]:
    """The process environment (a seam so the plugin's tests pass their own)."""
    return os.environ
