"""The tenant lifecycle: provision, suspend, resume, delete, and per-tenant plugin installs.

States: ``provisioning → active ⇄ suspended → deleting → deleted``; every change checks and bumps
the tenant's ``version``. Provisioning is a list of steps, each recorded in the registry when
done, and every step is idempotent. Two ways it can stop half-way:

* an exception in this process: the steps already done are undone in reverse order and the
  registry row removed, so nothing is left half-made;
* the process dies (or the task is cancelled): the tenant stays ``provisioning``, and calling
  :meth:`TenantService.provision` again claims it and resumes after the last recorded step.

Schemas are cloned from a template at head (:mod:`plexica.db.templates`), not migrated.

Every ``core.tenant.*`` event is written to ``core.outbox`` in the ``core`` transaction of the
registry change it reports (``created`` with the activation, ``suspended``/``resumed`` with the
status change, ``deleted`` with the final status), never in the tenant's schema, which does not
exist yet or is gone; the outbox relay publishes it once that commits.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, final

import attrs

from plexica.db.engine import Database
from plexica.db.ledger import forget
from plexica.db.migrations import TENANT_STREAM, MigrationStream
from plexica.db.migrator import TenantMigrator
from plexica.db.templates import TemplateProvisioner
from plexica.plugins.manager import LoadedPlugin, PluginManager
from plexica.storage.layout import StorageLayout
from plexica.tenancy.naming import cache_prefix, schema_name, validate_slug
from plexica.tenancy.repository import TenantPlugin, TenantRepository
from plexica_sdk import context
from plexica_sdk.errors import ConflictError, NotFoundError, TenantNotFoundError, ValidationError
from plexica_sdk.protocols import Cache, Host, ObjectStore
from plexica_sdk.types import TenantContext, TenantInfo

if TYPE_CHECKING:  # a protocol for annotations only: tenancy and people need not import events
    from plexica.events.recorder import EventRecorder

__all__ = ["STEPS", "AlreadyInstalledError", "PluginChange", "TenantService", "tenant_context_of"]

logger = logging.getLogger(__name__)

STEPS = ("schema", "plugins", "bucket", "hooks", "event")


class PluginAccess(Protocol):
    """Registers, per tenant, the permissions, default grants and policies an installed plugin brings."""

    async def on_plugin_installed(self, ctx: TenantContext, plugin: str) -> None: ...

    async def on_plugin_uninstalled(self, ctx: TenantContext, plugin: str) -> None: ...

    def forget(self, ctx: TenantContext) -> None: ...


class PluginGrants(Protocol):
    """Grants a plugin's own database access in a tenant (``plexica.remote.db_roles`` for remote plugins)."""

    async def on_plugin_installed(self, ctx: TenantContext, plugin: str) -> None: ...

    async def on_plugin_uninstalled(self, ctx: TenantContext, plugin: str) -> None: ...


def tenant_context_of(tenant: TenantInfo, **extra: Any) -> TenantContext:
    return TenantContext(
        tenant_id=tenant.id, slug=tenant.slug, schema=tenant.schema, plan=tenant.plan, status=tenant.status, **extra
    )


@attrs.frozen
class PluginChange:
    """What an install, upgrade or uninstall did in one tenant."""

    slug: str
    plugin: str
    version: str
    status: str
    before: str | None
    after: str | None


class AlreadyInstalledError(ConflictError):
    """The plugin is already installed (and enabled) for the tenant: the CLI treats it as a no-op."""


class _TakenOver(ConflictError):
    """Another worker claimed the tenant being provisioned; its work is not ours to undo."""


@final
class TenantService:
    """Business rules of the tenant lifecycle; the only writer of tenant status.

    Args:
        checkpoint: awaited with ``"<step>:done"`` and ``"<step>:recorded"`` around each
            provisioning step's record; tests inject crashes there.
        on_change: called after each committed change of a tenant's status or plugin installs
            (the host clears its event-delivery cache).
        invalidate: awaited with the slug after each such change, before the change's hooks and
            events (the host drops the tenant's cached registry entry in every process). If it
            raises, the change stays committed and the error propagates.
        prepare_events: awaited before ``core.tenant.created`` is written, e.g. to create the
            new tenant's topics.
        storage: where tenants' objects live (``storage.layout``); the ``bucket`` step and
            :meth:`delete` create and remove the tenant's bucket or prefix through it.
    """

    def __init__(
        self,
        *,
        db: Database,
        plugins: PluginManager,
        migrator: TenantMigrator,
        objects: ObjectStore,
        cache: Cache,
        events: EventRecorder,
        host_for: Callable[[str, TenantContext], Host],
        templates: TemplateProvisioner | None = None,
        checkpoint: Callable[[str], Awaitable[None]] | None = None,
        on_change: Callable[[], None] | None = None,
        invalidate: Callable[[str], Awaitable[None]] | None = None,
        prepare_events: Callable[[TenantInfo], Awaitable[None]] | None = None,
        access: PluginAccess | None = None,
        storage: StorageLayout | None = None,
        grants: PluginGrants | None = None,
    ) -> None:
        self.db = db
        self.plugins = plugins
        self.migrator = migrator
        self.objects = objects
        self.storage = storage or StorageLayout()
        self.cache = cache
        self.events = events
        self.host_for = host_for
        self.templates = templates or TemplateProvisioner(db)
        self.checkpoint = checkpoint
        self.on_change = on_change
        self.invalidate = invalidate
        self.prepare_events = prepare_events
        self.access = access
        self.grants = grants
        self.repo = TenantRepository()

    # ------------------------------------------------------------------ reads

    async def get(self, slug: str) -> TenantInfo:
        """Return a tenant that is not deleted. Raises ``TenantNotFoundError``."""
        validate_slug(slug)
        async with self.db.core_connection() as conn:
            return await self.repo.get(conn, slug)

    async def get_by_id(self, tenant_id: str) -> TenantInfo:
        """Return a tenant that is not deleted, by id. Raises ``TenantNotFoundError``."""
        async with self.db.core_connection() as conn:
            return await self.repo.get_by_id(conn, tenant_id)

    async def list(self) -> Sequence[TenantInfo]:
        async with self.db.core_connection() as conn:
            return await self.repo.list(conn)

    async def count_active(self) -> int:
        """How many tenants are active now."""
        async with self.db.core_connection() as conn:
            return await self.repo.count_active(conn)

    async def installed_plugins(self, tenant: TenantInfo) -> dict[str, tuple[str, str]]:
        """``{plugin: (version, status)}`` of the plugins installed for ``tenant``."""
        async with self.db.core_connection() as conn:
            return await self.repo.installed_plugins(conn, tenant.id)

    # ------------------------------------------------------------ provisioning

    async def provision(self, slug: str, *, name: str | None = None, plan: str = "standard") -> TenantInfo:
        """Create a tenant with every installable plugin, or resume one left ``provisioning``.

        Raises:
            InvalidTenantSlugError: the slug is malformed.
            ConflictError: a tenant with that slug exists (and is not being provisioned), or
                another worker took over its provisioning.
        """
        validate_slug(slug)
        if name is not None and not (1 <= len(name) <= 200):
            raise ValidationError("name must have 1 to 200 characters", field="name")
        async with self.db.core_connection() as conn:
            try:
                tenant = await self.repo.get(conn, slug, include_deleted=True)
            except TenantNotFoundError:
                tenant = await self.repo.insert(
                    conn, tenant_id=str(uuid.uuid4()), slug=slug, name=name or slug, plan=plan, schema=schema_name(slug)
                )
                resumed = False
            else:
                if tenant.status != "provisioning":
                    raise ConflictError(f"tenant slug {slug!r} is already taken", resource="tenant")
                tenant, resumed = await self.repo.claim(conn, tenant), True
            done = await self.repo.steps(conn, tenant.id) if resumed else []
        step = STEPS[0]
        try:
            for step in STEPS:
                if step not in done:
                    await self._run_step(step, tenant, resumed=resumed)
                    await self._checkpoint(f"{step}:done")
                    done.append(step)
                    tenant = await self._advance(tenant, done, activate=step == STEPS[-1], announce=step == "event")
                    await self._checkpoint(f"{step}:recorded")
            if tenant.status != "active":
                tenant = await self._advance(tenant, done, activate=True)
            return tenant
        except _TakenOver:
            raise
        except Exception as exc:
            logger.warning("provisioning failed; undoing", extra={"tenant": slug, "error": type(exc).__name__})
            await self._undo(tenant, [*done, step])
            raise

    async def _checkpoint(self, name: str) -> None:
        if self.checkpoint is not None:
            await self.checkpoint(name)

    async def _advance(
        self, tenant: TenantInfo, done: Sequence[str], *, activate: bool, announce: bool = False
    ) -> TenantInfo:
        """Record the steps ``done`` (and maybe activate), failing if another worker claimed the tenant.

        ``announce``: the ``event`` step is done: ``core.tenant.created`` commits with its record,
        so a crash before the record writes no event and the resumed provisioning writes it once.
        """
        try:
            async with self.db.core_connection() as conn:
                if announce:
                    ctx = tenant_context_of(tenant)
                    await self.events.record(conn, "core.tenant.created", self._payload(tenant), ctx)
                tenant = await self.repo.record_steps(conn, tenant, done, status="active" if activate else None)
        except ConflictError as exc:
            raise _TakenOver(str(exc), resource="tenant") from exc
        await self._changed(tenant.slug)
        return tenant

    async def _run_step(self, step: str, tenant: TenantInfo, *, resumed: bool) -> None:
        ctx = tenant_context_of(tenant)
        if step == "schema":
            streams = self.migrator.streams_for(self.plugins.installable)
            if resumed and await self._has_tables(tenant):
                # A crash came after the clone committed: finish with Alembic instead of cloning twice.
                await self.migrator.migrate(tenant.schema, [(s, "head") for s in streams], tenant_id=tenant.id)
            else:
                await self.templates.provision(tenant.schema, streams, tenant_id=tenant.id)
        elif step == "plugins":
            versions = {plugin: self._version(plugin) for plugin in self.plugins.installable}
            for plugin, version in versions.items():
                if self.grants is not None:
                    await self.grants.on_plugin_installed(ctx, plugin)
                if self.access is not None:
                    await self.access.on_plugin_installed(ctx, plugin)
                await self._call(ctx, "plexica_plugin_installed", plugin, version=version)
            async with self.db.core_connection() as conn:
                await self.repo.add_plugins(conn, tenant.id, versions)
            await self._changed(tenant.slug)
        elif step == "bucket":
            await self.storage.create_tenant(self.objects, tenant.slug)
        elif step == "hooks":
            await self._call(ctx, "plexica_tenant_provisioned", None)
        elif step == "event" and self.prepare_events is not None:  # the event: written by ``_advance``
            await self.prepare_events(tenant)

    async def _has_tables(self, tenant: TenantInfo) -> bool:
        if not await self.db.schema_exists(tenant.schema):
            return False
        return await self.migrator.current(tenant.schema, TENANT_STREAM) is not None

    async def _undo(self, tenant: TenantInfo, touched: Sequence[str]) -> None:
        # Best effort, in reverse: each undo is idempotent, and one failing does not stop the rest.
        # If the registry row cannot be removed, the tenant stays ``provisioning`` for a retry.
        if "hooks" in touched:  # plugins may have set things up outside the database: as on delete
            with contextlib.suppress(Exception):
                ctx = tenant_context_of(tenant)
                with context.use(ctx):
                    await self.plugins.each("plexica_tenant_deleting", tenant=ctx, per_plugin=self._hosts(ctx))
        if "bucket" in touched:
            with contextlib.suppress(Exception):
                await self.storage.delete_tenant(self.objects, tenant.slug)
        with contextlib.suppress(Exception):
            await self.db.drop_schema(tenant.schema)
        with contextlib.suppress(Exception):
            async with self.db.core_connection() as conn:
                await forget(conn, tenant.schema)
                await self.repo.delete_row(conn, tenant.id)
            await self._changed(tenant.slug)

    # --------------------------------------------------------------- lifecycle

    async def suspend(self, slug: str) -> TenantInfo:
        return await self._transition(slug, "active", "suspended", "plexica_tenant_suspended", "core.tenant.suspended")

    async def resume(self, slug: str) -> TenantInfo:
        return await self._transition(slug, "suspended", "active", "plexica_tenant_resumed", "core.tenant.resumed")

    async def _transition(self, slug: str, source: str, target: str, hook: str, event_type: str) -> TenantInfo:
        tenant = await self.get(slug)
        if tenant.status == target:
            return tenant
        if tenant.status != source:
            raise ConflictError(f"tenant {slug!r} is {tenant.status}, not {source}", resource="tenant")
        async with self.db.core_connection() as conn:
            tenant = await self.repo.set_status(conn, tenant, target)
            ctx = tenant_context_of(tenant)
            await self.events.record(conn, event_type, self._payload(tenant), ctx)
        await self._changed(tenant.slug)
        with context.use(ctx):
            await self.plugins.each(hook, tenant=ctx, per_plugin=self._hosts(ctx))
        return tenant

    async def delete(self, slug: str) -> TenantInfo:
        """Delete a tenant: hooks first (their failure stops the deletion), then its data.

        The schema is dropped only after every ``plexica_tenant_deleting`` hook succeeded, so a
        plugin can still read or export the tenant's data there. A tenant left ``deleting`` by a
        failure is deleted by calling this again.
        """
        tenant = await self.get(slug)
        if tenant.status != "deleting":
            async with self.db.core_connection() as conn:
                tenant = await self.repo.set_status(conn, tenant, "deleting")
            await self._changed(tenant.slug)
        await self._call(tenant_context_of(tenant), "plexica_tenant_deleting", None)
        await self.storage.delete_tenant(self.objects, slug)
        await self.cache.delete_prefix(cache_prefix(slug))
        await self.db.drop_schema(tenant.schema)
        async with self.db.core_connection() as conn:
            await forget(conn, tenant.schema)
            tenant = await self.repo.set_status(conn, tenant, "deleted")
            await self.events.record(conn, "core.tenant.deleted", self._payload(tenant), None)
        if self.access is not None:
            self.access.forget(tenant_context_of(tenant))
        await self._changed(tenant.slug)
        return tenant

    # ------------------------------------------------------------ plugin installs

    async def install_plugin(self, slug: str, plugin: str, *, revision: str | None = None) -> PluginChange:
        """Install ``plugin`` for one tenant: its migrations (up to ``revision``), then its hook.

        A failing ``plexica_plugin_installed`` hook undoes the migrations and fails the install.

        Raises:
            ValidationError: unknown plugin, or no such revision.
            AlreadyInstalledError: the plugin is already installed (use :meth:`upgrade_plugin`).
        """
        tenant, loaded, stream, installed = await self._plugin_target(slug, plugin)
        if installed is not None and installed.status == "enabled":
            raise AlreadyInstalledError(
                f"plugin {plugin!r} is already installed for tenant {slug!r}", resource="plugin"
            )
        target = self._resolve(stream, revision)
        before = after = None
        if stream is not None:
            before = await self.migrator.current(tenant.schema, stream)
            after = await self._upgrade(tenant, stream, before, target)
        ctx = tenant_context_of(tenant)
        try:
            if self.grants is not None:
                await self.grants.on_plugin_installed(ctx, plugin)
            if self.access is not None:
                await self.access.on_plugin_installed(ctx, plugin)
            await self._call(ctx, "plexica_plugin_installed", plugin, version=self._version(plugin))
        except Exception:
            for undo in (self.access, self.grants):
                if undo is not None:
                    with contextlib.suppress(Exception):
                        await undo.on_plugin_uninstalled(ctx, plugin)
            if stream is not None and after != before:
                await self.migrator.remove(tenant.schema, stream, tenant_id=tenant.id, revision=before or "base")
            raise
        pin = self._pin(stream, revision, target)
        await self._record_plugin(tenant, plugin, "enabled", pin)
        return PluginChange(slug, plugin, loaded.manifest.version, "enabled", before, after)

    async def upgrade_plugin(self, slug: str, plugin: str, *, revision: str | None = None) -> PluginChange:
        """Run ``plugin``'s pending revisions for one tenant (up to ``revision``), then its hook.

        Raises:
            ValidationError: unknown plugin, no such revision, or ``revision`` is behind the tenant's.
            NotFoundError: the plugin is not installed for this tenant.
        """
        tenant, loaded, stream, installed = await self._plugin_target(slug, plugin)
        if installed is None or installed.status != "enabled":
            raise NotFoundError(f"plugin {plugin!r} is not installed for tenant {slug!r}", resource="plugin")
        target = self._resolve(stream, revision)
        before = after = None
        if stream is not None:
            before = await self.migrator.current(tenant.schema, stream)
            after = await self._upgrade(tenant, stream, before, target)
        await self.finish_upgrade(tenant, plugin, installed.version, pin=self._pin(stream, revision, target))
        return PluginChange(slug, plugin, loaded.manifest.version, "enabled", before, after)

    async def finish_upgrade(self, tenant: TenantInfo, plugin: str, from_version: str, *, pin: str | None) -> None:
        """After ``plugin``'s migrations: record its loaded version for ``tenant``, then call its upgrade hook.

        Shared by :meth:`upgrade_plugin` and ``plexica migrate`` (:class:`~plexica.db.fleet.FleetMigrator`)
        so both leave the same end state. The version is recorded first, so a failing hook is not
        called again by a re-run; its error propagates.
        """
        await self._record_plugin(tenant, plugin, "enabled", pin)
        if self.grants is not None:  # new tables of the new version
            await self.grants.on_plugin_installed(tenant_context_of(tenant), plugin)
        if self.access is not None:  # a new version may bring new permissions, grants or policies
            await self.access.on_plugin_installed(tenant_context_of(tenant), plugin)
        await self._call(
            tenant_context_of(tenant),
            "plexica_plugin_upgraded",
            plugin,
            from_version=from_version,
            to_version=self._version(plugin),
        )

    async def uninstall_plugin(self, slug: str, plugin: str, *, keep_data: bool = False) -> PluginChange:
        """Uninstall ``plugin`` for one tenant: its hook, then (unless ``keep_data``) its tables.

        A failing ``plexica_plugin_uninstalled`` hook stops the uninstall before anything is dropped.

        Raises:
            ValidationError: unknown plugin.
            NotFoundError: the plugin is not installed for this tenant.
        """
        tenant, _, stream, installed = await self._plugin_target(slug, plugin)
        if installed is None:
            raise NotFoundError(f"plugin {plugin!r} is not installed for tenant {slug!r}", resource="plugin")
        if installed.status == "enabled":
            await self._call(tenant_context_of(tenant), "plexica_plugin_uninstalled", plugin)
            if self.access is not None:
                await self.access.on_plugin_uninstalled(tenant_context_of(tenant), plugin)
            await self._record_plugin(tenant, plugin, "uninstalled", installed.target_revision)
            # A reinstall must not be served the old configuration from the cache.
            await self.cache.delete(f"{cache_prefix(tenant.slug)}plugin:{plugin}:config")
        if self.grants is not None:  # before any table goes: the plugin's own access ends first
            await self.grants.on_plugin_uninstalled(tenant_context_of(tenant), plugin)
        before = after = await self.migrator.current(tenant.schema, stream) if stream is not None else None
        if not keep_data:
            if stream is not None:
                after = await self.migrator.remove(tenant.schema, stream, tenant_id=tenant.id)
            async with self.db.core_connection() as conn:
                await self.repo.remove_plugin(conn, tenant.id, plugin)
            await self._changed(tenant.slug)
        return PluginChange(slug, plugin, installed.version, "uninstalled", before, after)

    def check_plugin(self, plugin: str, revision: str | None = None) -> None:
        """Raise ``ValidationError`` unless ``plugin`` is installable and has ``revision``."""
        loaded = self.plugins.get(plugin)
        if loaded is None or loaded.is_builtin:
            raise ValidationError(f"unknown plugin {plugin!r}", field="plugin")
        self._resolve(self.migrator.plugin_stream(plugin), revision)

    async def _plugin_target(
        self, slug: str, plugin: str
    ) -> tuple[TenantInfo, LoadedPlugin, MigrationStream | None, TenantPlugin | None]:
        self.check_plugin(plugin)
        loaded = self.plugins.plugins[plugin]
        tenant = await self.get(slug)
        if tenant.status not in ("active", "suspended"):
            raise ConflictError(f"tenant {slug!r} is {tenant.status}", resource="tenant")
        async with self.db.core_connection() as conn:
            installed = (await self.repo.plugins_of(conn, tenant.id)).get(plugin)
        return tenant, loaded, self.migrator.plugin_stream(plugin), installed

    @staticmethod
    def _resolve(stream: MigrationStream | None, revision: str | None) -> str | None:
        if stream is None:
            if revision is not None:
                raise ValidationError("this plugin has no tables, so no revisions", field="revision")
            return None
        return stream.resolve(revision or "head")

    @staticmethod
    def _pin(stream: MigrationStream | None, revision: str | None, target: str | None) -> str | None:
        """Only an explicit revision short of the head pins the tenant there."""
        return target if stream is not None and revision is not None and target != stream.head else None

    async def _upgrade(
        self, tenant: TenantInfo, stream: MigrationStream, before: str | None, target: str | None
    ) -> str | None:
        if not stream.is_ancestor(before, target):
            raise ValidationError(
                f"{stream.name}: {tenant.slug} is at {before}, past {target or 'base'}; upgrades never go back",
                field="revision",
            )
        done = await self.migrator.migrate(tenant.schema, [(stream, target or "base")], tenant_id=tenant.id)
        return done[stream.name].after

    async def _record_plugin(self, tenant: TenantInfo, plugin: str, status: str, pin: str | None) -> None:
        async with self.db.core_connection() as conn:
            await self.repo.upsert_plugin(conn, tenant.id, plugin, self._version(plugin), status, target_revision=pin)
        await self._changed(tenant.slug)

    async def _changed(self, slug: str) -> None:
        if self.on_change is not None:
            self.on_change()
        if self.invalidate is not None:
            await self.invalidate(slug)

    def _version(self, plugin: str) -> str:
        loaded = self.plugins.get(plugin)
        return loaded.manifest.version if loaded is not None else "0"

    async def _call(self, ctx: TenantContext, hook: str, plugin: str | None, **kwargs: Any) -> None:
        """Call ``hook`` (on every plugin, or only ``plugin``) in ``ctx``; raise its first failure."""
        with context.use(ctx):
            results = await self.plugins.each(
                hook, only=None if plugin is None else {plugin}, tenant=ctx, per_plugin=self._hosts(ctx), **kwargs
            )
        results.raise_first()

    def _hosts(self, ctx: TenantContext) -> Callable[[str], dict[str, Any]]:
        """Each plugin's hook receives its own host handle."""
        return lambda plugin: {"host": self.host_for(plugin, ctx)}

    @staticmethod
    def _payload(tenant: TenantInfo) -> dict[str, Any]:
        return {"tenant_id": tenant.id, "slug": tenant.slug, "name": tenant.name}
