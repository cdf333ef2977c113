"""The composition root: builds every service from settings and owns their lifetimes.

``create_app`` and the CLI both use a :class:`Platform`. Building one is cheap and connects
nothing; entering it (``async with``) opens the database, cache, object store, HTTP client and
event bus on one exit stack, migrates ``core``, and subscribes the plugins. Leaving it closes
everything in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import secrets
from collections.abc import AsyncIterable, Collection, Iterable, Mapping, Sequence
from typing import Any, final

import httpx2

from plexica.auth import DevIssuer, TokenVerifier, build_token_verifier
from plexica.cache import create_cache
from plexica.cache.fallback import fallback_for
from plexica.cache.layered import LayeredCache
from plexica.db.engine import create_database
from plexica.db.migrator import TenantMigrator
from plexica.events import EventBus, create_event_bus, source_for
from plexica.events.delivery import DeliveryCache
from plexica.events.outbox import Outbox, OutboxRelay, mark_processed
from plexica.events.recorder import OutboxRecorder
from plexica.identity.realm_plugin import build_realm_plugin
from plexica.identity.super_admins import SuperAdminService
from plexica.identity.teams import TeamService
from plexica.identity.users import UserService
from plexica.observability.host_metrics import ACTIVE_TENANTS, watch_host
from plexica.observability.metrics import Metrics
from plexica.observability.tracing import current_traceparent
from plexica.permissions import PermissionEngine, PermissionService
from plexica.plugins import PluginManager, discover
from plexica.plugins.calls import HookResults
from plexica.plugins.host import EmbeddedHost, HostServices
from plexica.remote.callbacks import CallbackServices
from plexica.remote.context_tokens import ContextSigner
from plexica.remote.credentials import ServiceCredentials
from plexica.remote.db_roles import PluginRoles
from plexica.remote.deferred import HookDeferrer
from plexica.remote.registry import RemotePlugins
from plexica.settings import Settings
from plexica.storage import StorageLayout, create_object_store
from plexica.storage.scoped import ObjectTooLargeError, PluginObjectStore, capped
from plexica.tenancy.directory import TenantDirectory
from plexica.tenancy.plugin_config import PluginConfigService
from plexica.tenancy.service import TenantService, tenant_context_of
from plexica.workspaces.service import WorkspaceService
from plexica_sdk import context
from plexica_sdk.errors import EventError, PayloadTooLargeError, PluginLoadError, SettingsError, TenantNotFoundError
from plexica_sdk.protocols import Cache, Host, ObjectStore, PluginObjects
from plexica_sdk.types import Decision, Event, ObjectInfo, TenantContext, TenantInfo

__all__ = ["Platform"]

logger = logging.getLogger(__name__)


@final
class Platform:
    """Every host service, built from one :class:`Settings`.

    Args:
        settings: the host settings.
        plugins: plugin objects to load besides entry points and ``settings.plugins``.
        serving: this process serves requests (``create_app``), so it also runs background upkeep
            such as keeping ``database.spare_schemas`` warm; CLI commands leave it off.

    Raises:
        PluginLoadError: a plugin cannot be loaded (raised here, before anything connects).
    """

    def __init__(self, settings: Settings, *, plugins: Iterable[object] = (), serving: bool = False) -> None:
        self.settings = settings
        self.serving = serving
        realm_plugin = build_realm_plugin(settings)  # None unless Keycloak admin credentials are set
        # One bounded manifest fetch per remote plugin, else its last good copy (plexica.remote.snapshot).
        self.remote = RemotePlugins(settings)
        self.plugins = PluginManager(
            [
                *discover(
                    paths=settings.plugins,
                    objects=plugins,
                    builtins=[realm_plugin] if realm_plugin is not None else [],
                    use_entry_points=settings.load_entry_points,
                    # A plugin registered remote runs remote even where its package is installed:
                    # moving it out of the host is one setting, not an uninstall.
                    disabled=(*settings.disabled_plugins, *(config.name for config in self.remote.configs)),
                ),
                *self.remote.sources(),
            ],
            hook_timeout=settings.http.plugin_timeout_seconds,
        )
        self.db = create_database(settings.database, settings.data_dir)
        m = settings.metrics
        self.metrics = Metrics(
            enabled=m.enabled,
            tenant_label_limit=m.tenant_label_limit,
            tenant_label_refresh_seconds=m.tenant_label_refresh_seconds,
            refresh_seconds=m.refresh_seconds,
        )
        self.db.on_engine = self.metrics.instrument_engine
        # A plugin may supply the backends (``plexica_*_backend``); else the settings choose.
        self.cache: Cache = _provided(self.plugins, "plexica_cache_backend", Cache) or create_cache(settings.cache)
        # The host's own caches copy the database: while the shared cache is down they miss (docs/reliability.md).
        self.host_cache = fallback_for(self.cache)
        self.storage_layout = StorageLayout.from_settings(settings.storage)
        self.objects: ObjectStore = _provided(self.plugins, "plexica_object_store_backend", ObjectStore) or (
            create_object_store(settings.storage, settings.data_dir, signing_key=_signing_key(settings))
        )
        self.bus: EventBus = create_event_bus(settings.events, self)
        for plugin in self.plugins.plugins.values():
            self.bus.registry.register_all(plugin.name, plugin.event_types)
        events = settings.events
        self.outbox = Outbox(self.db, self.bus, self._tenant_schemas, lease_seconds=events.outbox.lease_seconds)
        self.relay = OutboxRelay(self.outbox, self.bus, events, on_published=self.metrics.count_published)
        # Core services write their events in their own transactions (never straight to the bus).
        self.core_events = OutboxRecorder(self.outbox, self.bus.registry)
        # Lifecycle hooks a remote plugin misses while down go to the core outbox (plexica.remote.deferred).
        self.remote.bind(HookDeferrer(self.db, self.core_events))
        self.remote.watch(self.metrics)
        # Tenants by id, and (tenant, installs) by slug: what every event delivery asks.
        self.delivery_cache: DeliveryCache[Any] = DeliveryCache(
            events.delivery_cache_seconds, events.delivery_cache_size
        )
        # L1 (this process) → L2 (self.cache) → database; Redis pub/sub carries invalidations.
        self.layered = LayeredCache(
            self.host_cache,
            max_age=settings.cache.l1_max_age_seconds,
            subscribed_max_age=max(settings.cache.l1_max_age_seconds, settings.cache.l1_subscribed_max_age_seconds),
            max_entries=settings.cache.l1_max_entries,
        )
        self.permissions = PermissionEngine(
            db=self.db,
            cache=self.host_cache,
            local=self.layered,
            plugins=self.plugins,
            installed=self._enabled_plugins,
            resource_attributes=self._resource_attributes,
        )
        self.permission_service = PermissionService(self.db, self.permissions)
        # Production never serves the dev issuer (token mode without Keycloak refuses to start).
        dev = settings.auth.keycloak is None and settings.is_development
        self.dev_issuer = DevIssuer.from_settings(settings) if dev else None
        self.http_client = httpx2.AsyncClient(timeout=10.0)
        self.verifier: TokenVerifier = build_token_verifier(settings, self.http_client, self.dev_issuer)
        self.migrator = TenantMigrator(self.db, self.plugins)
        # PostgreSQL: each remote plugin's own role, granted per tenant on install (plexica.remote.db_roles).
        self.db_roles = (
            PluginRoles(
                self.db,
                stream_of=self.migrator.plugin_stream,
                is_remote=self._is_remote,
                event_types=lambda name: [t.type for t in self.plugins.plugins[name].event_types],
                source_of=source_for,
            )
            if self.db.dialect == "postgresql"
            else None
        )
        self.directory = TenantDirectory(self.layered, self.db)
        self.tenants = TenantService(
            db=self.db,
            plugins=self.plugins,
            migrator=self.migrator,
            objects=self.objects,
            cache=self.host_cache,
            events=self.core_events,
            host_for=self.host_for,
            on_change=self._tenants_changed,
            invalidate=self.directory.invalidate,
            prepare_events=self._prepare_topics,
            access=self.permissions,
            storage=self.storage_layout,
            grants=self.db_roles,
        )
        self.users = UserService(
            db=self.db, cache=self.host_cache, events=self.core_events, access=self.permissions, local=self.layered
        )
        self.teams = TeamService(db=self.db, access=self.permissions)
        self.super_admins = SuperAdminService(db=self.db, cache=self.host_cache)
        self.workspaces = WorkspaceService(
            db=self.db, cache=self.host_cache, events=self.core_events, access=self.permissions
        )
        self.remote_credentials = ServiceCredentials(self.db)  # remote plugins' callbacks outside a host call
        self.plugin_config = PluginConfigService(self.db, self.host_cache, self.plugins)
        self.host_services = HostServices(
            # Plugins' sessions send BEGIN only before their first write (see plexica.db.engine).
            sessions=functools.partial(self.db.tenant_session, lazy_begin=True),
            publisher=self,
            processed=self,
            authorizer=self,
            cache=self.cache,
            objects=self.plugin_objects,
            config=self.plugin_config,
        )
        watch_host(
            self.metrics,
            count_active_tenants=self.tenants.count_active,
            bus=self.bus,
            outbox=self.outbox,
            relay=self.relay,
            permission_cache=self.permissions.cache,
            plugins=len(self.plugins.infos()),
            cache_fallbacks=lambda: self.host_cache.fallbacks,
        )
        self._stack: contextlib.AsyncExitStack | None = None

    # ---------------------------------------------------------------- lifetime

    async def __aenter__(self) -> Platform:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(self.db)
            for backend in (self.cache, self.objects):
                if isinstance(backend, contextlib.AbstractAsyncContextManager):  # a provided one may need no opening
                    await stack.enter_async_context(backend)
            await stack.enter_async_context(self.layered)  # listens for other processes' invalidations
            await stack.enter_async_context(self.http_client)
            await stack.enter_async_context(self.remote)  # the remote plugins' connection pools
            await self.migrator.migrate_core()
            for plugin in self.plugins.plugins.values():
                for subscription in plugin.subscriptions:
                    self.bus.subscribe(plugin.name, subscription)
            await self.bus.start()
            stack.push_async_callback(self.bus.stop)
            await stack.enter_async_context(self.relay)  # stops before the bus it publishes to
            spares = self.settings.database.spare_schemas
            if self.serving and spares and self.db.dialect == "postgresql":
                refill = self.tenants.templates.keep_spares(
                    lambda: self.migrator.streams_for(self.plugins.installable), spares
                )
                stack.push_async_callback(_cancel, asyncio.create_task(refill, name="plexica-spare-schemas"))
            self._stack = stack.pop_all()
        await self.announce_started()
        return self

    async def announce_started(self, only: Collection[str] | None = None) -> HookResults:
        """Call ``plexica_host_started`` (on ``only`` these plugins): at start-up, and for a remote
        plugin whose process was restarted after it (its background work starts in that hook)."""
        return await self.plugins.each(
            "plexica_host_started", only=only, per_plugin=lambda name: {"host": _GlobalHost(self, name)}
        )

    async def __aexit__(self, *exc: object) -> None:
        await self.plugins.each("plexica_host_stopping", per_plugin=lambda name: {"host": _GlobalHost(self, name)})
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()

    def _tenants_changed(self) -> None:
        """After a committed tenant status or install change: drop cached deliveries, recount tenants."""
        self.delivery_cache.invalidate()
        self.metrics.invalidate(ACTIVE_TENANTS)

    # ----------------------------------------------------------- plugin access

    def host_for(self, plugin: str, ctx: TenantContext | None) -> Host:
        """The host handle a plugin uses in the tenant context ``ctx`` (None: outside any tenant)."""
        if ctx is None:
            return _GlobalHost(self, plugin)
        return EmbeddedHost(self.host_services, plugin, ctx)

    def _is_remote(self, plugin: str) -> bool:
        loaded = self.plugins.get(plugin)
        return loaded is not None and loaded.source.mode == "remote"

    def plugin_objects(self, plugin: str, ctx: TenantContext) -> PluginObjects:
        """``plugin``'s objects in ``ctx``'s tenant; each upload calls that plugin's ``plexica_object_uploaded``."""
        loaded = self.plugins.get(plugin)
        namespaces = loaded.storage if loaded is not None else ()

        async def uploaded(info: ObjectInfo) -> None:
            with context.use(ctx):
                await self.plugins.each(
                    "plexica_object_uploaded",
                    only={plugin},
                    tenant=ctx,
                    key=info.key,
                    info=info,
                    host=self.host_for(plugin, ctx),
                )

        return PluginObjectStore(
            self.objects, self.storage_layout, slug=ctx.slug, plugin=plugin, namespaces=namespaces, on_uploaded=uploaded
        )

    async def upload_presigned(
        self,
        bucket: str,
        key: str,
        data: AsyncIterable[bytes],
        content_type: str | None,
        declared_size: int | None = None,
    ) -> ObjectInfo:
        """Store the body of a verified local presigned PUT, as its owner's ``host.objects.put`` would.

        An object of a loaded plugin in an existing tenant goes through that plugin's objects: its
        namespace limits apply and its ``plexica_object_uploaded`` hook runs. Any other object
        (one the host presigned on the raw store) is stored as is, up to ``storage.max_object_bytes``.
        The limit is enforced while streaming: a ``declared_size`` (``Content-Length``) above it is
        refused before a byte is read, and a body crossing it stops at the chunk that crosses it.

        Raises:
            PayloadTooLargeError: the body is larger than its limit (nothing is stored).
            ValidationError: the body breaks another rule, e.g. its content type (nothing is stored).
        """
        owner = self.storage_layout.owner(bucket, key)
        try:
            if owner is not None and self.plugins.get(owner.plugin) is not None:
                try:
                    tenant = await self.directory.get(owner.slug)
                except TenantNotFoundError:
                    pass
                else:
                    objects = self.plugin_objects(owner.plugin, tenant_context_of(tenant))
                    if isinstance(objects, PluginObjectStore) and declared_size is not None:
                        _refuse_declared(declared_size, objects.limit_for(owner.key), owner.key)
                    return await objects.put(owner.key, data, content_type=content_type)
            limit = self.storage_layout.max_object_bytes
            if declared_size is not None:
                _refuse_declared(declared_size, limit, key)
            return await self.objects.put(bucket, key, capped(data, limit, key), content_type=content_type)
        except ObjectTooLargeError as exc:
            raise PayloadTooLargeError(exc.limit) from None

    async def authorize(
        self, ctx: TenantContext, permission: str, resource: Mapping[str, Any] | None = None
    ) -> Decision:
        """Decide for the context's user with the permission engine (RBAC, then ABAC)."""
        return await self.permissions.authorize(ctx, permission, resource)

    async def _enabled_plugins(self, ctx: TenantContext) -> list[str]:
        async with self.db.core_connection() as conn:
            found = await self.tenants.repo.installed_plugins(conn, ctx.tenant_id)
        return [name for name, (_version, status) in found.items() if status == "enabled"]

    async def _resource_attributes(self, ctx: TenantContext, kind: str, ident: str) -> Mapping[str, Any] | None:
        found = await self.plugins.first(
            "plexica_resource_attributes", resource_type=kind, resource_id=ident, tenant=ctx
        )
        return found if isinstance(found, Mapping) else None

    async def publish(
        self,
        plugin: str,
        event_type: str,
        data: Any,
        ctx: TenantContext | None,
        *,
        subject: str | None = None,
        session: Any = None,
    ) -> Event:
        """Validate and publish ``plugin``'s event for ``ctx``'s tenant (``None``: a global event).

        With ``session`` (a tenant session of ``ctx``) the event is written to the outbox in that
        session's transaction, and the relay publishes it after the commit.

        Raises:
            EventError: unknown type, another plugin's type, a payload failing its schema, or a
                ``session`` without a tenant context or of another tenant. Nothing is sent or written.
        """
        event = self.event_for(plugin, event_type, data, ctx, subject=subject)
        if session is None:
            await self.bus.publish(event)
            self.metrics.count_published((event,))  # accepted by the broker; outbox rows count at relay
        elif ctx is None:
            raise EventError("events written in a transaction belong to its tenant: a tenant context is needed")
        else:
            self.bus.registry.validate(plugin, event_type, data)
            await self.outbox.write(session, ctx, [event])
        return event

    @staticmethod
    def event_for(
        plugin: str, event_type: str, data: Any, ctx: TenantContext | None, *, subject: str | None = None
    ) -> Event:
        """The event ``plugin`` publishes in ``ctx`` (not validated, not sent): one shape for every path."""
        return Event(
            type=event_type,
            source=source_for(plugin),
            data=data,
            subject=subject,
            tenantid=ctx.tenant_id if ctx else None,
            workspaceid=ctx.workspace_id if ctx else None,
            userid=ctx.user.id if ctx and ctx.user else None,
            traceid=ctx.trace_id if ctx else None,
            traceparent=current_traceparent(),  # None unless traced: handlers join the publisher's trace
        )

    def prepare_event(
        self, plugin: str, event_type: str, data: Any, ctx: TenantContext, subject: str | None
    ) -> tuple[Event, Mapping[str, Any]]:
        """Validate and build ``plugin``'s event and its outbox row, for a remote session to write.

        Raises:
            EventError: as :meth:`publish` with a session; nothing is written.
        """
        self.bus.registry.validate(plugin, event_type, data)
        event = self.event_for(plugin, event_type, data, ctx, subject=subject)
        return event, self.outbox.rows_for(ctx, [event])[0]

    def callback_services(self, signer: ContextSigner | None) -> CallbackServices:
        """What the host callback API of remote plugins may use (``plexica.http.routes.host_callbacks``)."""

        async def jwks() -> Mapping[str, Any]:
            assert signer is not None
            return signer.jwks()

        def is_plugin(name: str) -> bool:
            loaded = self.plugins.get(name)
            return loaded is not None and not loaded.is_builtin

        return CallbackServices(
            host_for=self.host_for,
            tenants=self.directory,
            is_active=self.is_active,
            is_plugin=is_plugin,
            credentials=self.remote_credentials,
            jwks=jwks if signer is not None else None,
            issuer=signer.issuer if signer is not None else self.settings.remote.issuer,
            prepare=self.prepare_event,
            wake=lambda ctx: self.relay.wake({self.outbox.store.lane_of(ctx.schema)}),
            remote_sessions=self.db.dialect == "postgresql",
        )

    async def mark_processed(self, plugin: str, event: Event, ctx: TenantContext, session: Any) -> bool:
        """Record that ``plugin`` handled ``event`` in ``ctx``'s tenant, in ``session``'s transaction.

        Returns ``False`` when it was recorded before (see ``Host.mark_processed``).
        """
        return await mark_processed(session, ctx, plugin, event)

    async def _tenant_schemas(self) -> Sequence[str]:
        return [tenant.schema for tenant in await self.tenants.list() if tenant.status != "deleted"]

    async def _prepare_topics(self, tenant: TenantInfo) -> None:
        """Create a new tenant's topics up front, so consumers subscribe before its first events."""
        topics = self.bus.topics
        if topics.needs_slug:
            await self.bus.ensure_topics([topics.topic_for(t, tenant.slug) for t in self.bus.registry.types()])

    # ------------------------------------------------- the event bus's Delivery

    async def context_for(self, event: Event) -> TenantContext | None:
        """The tenant context an event's handlers run in; None for unknown or deleted tenants."""
        tenant_id = event.tenantid
        if tenant_id is None:
            return None

        async def load() -> TenantInfo | None:
            try:
                return await self.directory.get_by_id(tenant_id)
            except TenantNotFoundError:
                return None

        tenant: TenantInfo | None = await self.delivery_cache.get(("id", tenant_id), load)
        if tenant is None:
            return None
        return tenant_context_of(tenant, workspace_id=event.workspaceid, trace_id=event.traceid)

    async def is_active(self, plugin: str, tenant_slug: str) -> bool:
        loaded = self.plugins.get(plugin)
        if loaded is None:
            return False
        if loaded.is_builtin:
            return True

        async def load() -> dict[str, tuple[str, str]] | None:
            try:
                tenant = await self.directory.get(tenant_slug)
            except TenantNotFoundError:
                return None
            return await self.tenants.installed_plugins(tenant)

        installed: dict[str, tuple[str, str]] | None = await self.delivery_cache.get(("installs", tenant_slug), load)
        return installed is not None and installed.get(plugin, ("", ""))[1] == "enabled"


def _provided(plugins: PluginManager, hook: str, protocol: type[Any]) -> Any:
    """The backend a plugin provides through ``hook`` (plugins before built-ins), or ``None``.

    Raises:
        PluginLoadError: the provider returned something that is not a ``protocol``.
    """
    for name, backend in plugins.collect_reversed(hook).items():
        if backend is None:
            continue
        if not isinstance(backend, protocol):
            raise PluginLoadError(name, f"{hook}() returned {type(backend).__name__}, not a {protocol.__name__}")
        logger.info("backend provided by a plugin", extra={"plugin": name, "hook": hook})
        return backend
    return None


def _refuse_declared(size: int, limit: int, key: str) -> None:
    """A declared body size over the limit: refused before any byte is read."""
    if size > limit:
        raise ObjectTooLargeError(key, limit)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _signing_key(settings: Settings) -> bytes | None:
    """The key that signs local presigned URLs: from settings, else one kept in the data directory."""
    if settings.secret_key:
        return hashlib.sha256(b"plexica-objects\0" + settings.secret_key.encode()).digest()
    if settings.storage.backend != "local":
        return None
    path = settings.data_dir / "secret.key"
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key.hex())
        return key
    except ValueError as exc:
        raise SettingsError([f"{path} is corrupt; delete it to create a new key"], path=str(path)) from exc


@final
class _GlobalHost:
    """The handle given to host-level hooks, outside any tenant: tenant calls need a context."""

    def __init__(self, platform: Platform, plugin: str) -> None:
        self._platform = platform
        self.plugin = plugin

    @property
    def tenant(self) -> TenantContext:
        return context.current("a tenant-scoped host call")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._platform.host_for(self.plugin, self.tenant), name)
