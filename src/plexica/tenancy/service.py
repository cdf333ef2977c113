"""The tenant lifecycle: provision, suspend, resume, delete.

States: ``provisioning → active ⇄ suspended → deleting → deleted``. Provisioning is a list of
steps, each recorded in the registry when done. When a step fails, the steps already done are
undone in reverse order and the registry row is removed, so a failed provisioning leaves nothing
half-made; if the process dies mid-way, calling :meth:`TenantService.provision` again resumes
from the recorded steps.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol, final

from plexica.db.engine import Database
from plexica.db.migrator import TenantMigrator
from plexica.plugins.manager import PluginManager
from plexica.tenancy.naming import bucket_name, cache_prefix, schema_name, validate_slug
from plexica.tenancy.repository import TenantRepository
from plexica_sdk import context
from plexica_sdk.errors import ConflictError, TenantNotFoundError, ValidationError
from plexica_sdk.protocols import Cache, Host, ObjectStore
from plexica_sdk.types import TenantContext, TenantInfo

__all__ = ["EventPublisher", "TenantService", "tenant_context_of"]

logger = logging.getLogger(__name__)

STEPS = ("schema", "migrations", "plugins", "bucket", "hooks")


class EventPublisher(Protocol):
    """Publishes a plugin's event for a tenant (``ctx`` None: a global event)."""

    async def __call__(self, plugin: str, event_type: str, data: Any, ctx: TenantContext | None) -> object: ...


def tenant_context_of(tenant: TenantInfo, **extra: Any) -> TenantContext:
    return TenantContext(
        tenant_id=tenant.id, slug=tenant.slug, schema=tenant.schema, plan=tenant.plan, status=tenant.status, **extra
    )


@final
class TenantService:
    """Business rules of the tenant lifecycle; the only writer of tenant status."""

    def __init__(
        self,
        *,
        db: Database,
        plugins: PluginManager,
        migrator: TenantMigrator,
        objects: ObjectStore,
        cache: Cache,
        publish: EventPublisher,
        host_for: Callable[[str, TenantContext], Host],
    ) -> None:
        self.db = db
        self.plugins = plugins
        self.migrator = migrator
        self.objects = objects
        self.cache = cache
        self.publish = publish
        self.host_for = host_for
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

    async def installed_plugins(self, tenant: TenantInfo) -> dict[str, tuple[str, str]]:
        """``{plugin: (version, status)}`` of the plugins installed for ``tenant``."""
        async with self.db.core_connection() as conn:
            return await self.repo.installed_plugins(conn, tenant.id)

    # ------------------------------------------------------------ provisioning

    async def provision(self, slug: str, *, name: str | None = None, plan: str = "standard") -> TenantInfo:
        """Create a tenant with every installable plugin, or resume one left ``provisioning``.

        Raises:
            InvalidTenantSlugError: the slug is malformed.
            ConflictError: a tenant with that slug exists (and is not being provisioned).
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
            if tenant.status != "provisioning":
                raise ConflictError(f"tenant slug {slug!r} is already taken", resource="tenant")
            done = await self.repo.steps(conn, tenant.id)
        ctx = tenant_context_of(tenant)
        try:
            for step in STEPS:
                if step not in done:
                    await self._run_step(step, tenant, ctx)
                    async with self.db.core_connection() as conn:
                        await self.repo.record_step(conn, tenant.id, step)
                    done.append(step)
        except BaseException as exc:
            logger.warning("provisioning failed; undoing", extra={"tenant": slug, "error": type(exc).__name__})
            await self._undo(tenant, done)
            raise
        async with self.db.core_connection() as conn:
            tenant = await self.repo.set_status(conn, tenant, "active")
        await self.publish("core", "core.tenant.created", self._payload(tenant), tenant_context_of(tenant))
        return tenant

    async def _run_step(self, step: str, tenant: TenantInfo, ctx: TenantContext) -> None:
        if step == "schema":
            await self.db.create_schema(tenant.schema)
        elif step == "migrations":
            await self.migrator.migrate_base(tenant.schema)
        elif step == "plugins":
            for plugin in self.plugins.installable:
                await self.install_plugin(tenant, plugin)
        elif step == "bucket":
            await self.objects.create_bucket(bucket_name(tenant.slug))
        elif step == "hooks":
            with context.use(ctx):
                results = await self.plugins.each("plexica_tenant_provisioned", tenant=ctx, per_plugin=self._hosts(ctx))
            results.raise_first()

    async def _undo(self, tenant: TenantInfo, done: Sequence[str]) -> None:
        # Best effort, in reverse: each undo is idempotent, and one failing does not stop the rest.
        if "bucket" in done:
            with contextlib.suppress(Exception):
                await self.objects.delete_bucket(bucket_name(tenant.slug), force=True)
        with contextlib.suppress(Exception):
            await self.db.drop_schema(tenant.schema)
        async with self.db.core_connection() as conn:
            await self.repo.delete_row(conn, tenant.id)

    async def install_plugin(self, tenant: TenantInfo, plugin: str) -> None:
        """Run ``plugin``'s migrations in the tenant's schema, record it, call its hook."""
        loaded = self.plugins.get(plugin)
        if loaded is None or loaded.is_builtin:
            raise ValidationError(f"unknown plugin {plugin!r}", field="plugin")
        await self.migrator.migrate_plugin(tenant.schema, plugin)
        ctx = tenant_context_of(tenant)
        with context.use(ctx):
            results = await self.plugins.each(
                "plexica_plugin_installed",
                only={plugin},
                tenant=ctx,
                version=loaded.manifest.version,
                per_plugin=self._hosts(ctx),
            )
        results.raise_first()
        async with self.db.core_connection() as conn:
            await self.repo.upsert_plugin(conn, tenant.id, plugin, loaded.manifest.version, "enabled")

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
        with context.use(ctx):
            await self.plugins.each(hook, tenant=ctx, per_plugin=self._hosts(ctx))
        await self.publish("core", event_type, self._payload(tenant), ctx)
        return tenant

    async def delete(self, slug: str) -> TenantInfo:
        """Delete a tenant: hooks first (their failure stops the deletion), then its data.

        A tenant left ``deleting`` by a failure is deleted by calling this again.
        """
        tenant = await self.get(slug)
        if tenant.status != "deleting":
            async with self.db.core_connection() as conn:
                tenant = await self.repo.set_status(conn, tenant, "deleting")
        ctx = tenant_context_of(tenant)
        with context.use(ctx):
            results = await self.plugins.each("plexica_tenant_deleting", tenant=ctx, per_plugin=self._hosts(ctx))
        results.raise_first()
        await self.objects.delete_bucket(bucket_name(slug), force=True)
        await self.cache.delete_prefix(cache_prefix(slug))
        await self.db.drop_schema(tenant.schema)
        async with self.db.core_connection() as conn:
            tenant = await self.repo.set_status(conn, tenant, "deleted")
        await self.publish("core", "core.tenant.deleted", self._payload(tenant), None)
        return tenant

    def _hosts(self, ctx: TenantContext) -> Callable[[str], dict[str, Any]]:
        """Each plugin's hook receives its own host handle."""
        return lambda plugin: {"host": self.host_for(plugin, ctx)}

    @staticmethod
    def _payload(tenant: TenantInfo) -> dict[str, Any]:
        return {"tenant_id": tenant.id, "slug": tenant.slug, "name": tenant.name}
