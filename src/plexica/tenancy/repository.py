"""Queries on the tenant registry. Parameterized SQLAlchemy Core only.

Every change of a tenant row checks and bumps its ``version`` (optimistic locking): two
processes acting on one tenant cannot both win, and the loser gets a :class:`ConflictError`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any, final

import attrs
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from plexica.tenancy.models import tenant_plugins, tenants
from plexica_sdk.errors import ConflictError, TenantNotFoundError
from plexica_sdk.types import TenantInfo

__all__ = ["TenantPlugin", "TenantRepository"]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime) -> dt.datetime:
    # SQLite returns naive datetimes; everything we store is UTC.
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _info(row: sa.Row[Any]) -> TenantInfo:
    return TenantInfo(
        id=row.id,
        slug=row.slug,
        name=row.name,
        status=row.status,
        plan=row.plan,
        schema=row.schema_name,
        version=row.version,
        created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at),
    )


@attrs.frozen
class TenantPlugin:
    """One plugin's install in one tenant. ``target_revision`` None: its schema follows the head."""

    plugin: str
    version: str
    status: str
    target_revision: str | None
    config: dict[str, Any]


def _plugin(row: sa.Row[Any]) -> TenantPlugin:
    return TenantPlugin(row.plugin, row.version, row.status, row.target_revision, dict(row.config or {}))


@final
class TenantRepository:
    """Reads and writes ``core.tenants`` and ``core.tenant_plugins`` on a given connection."""

    async def get(self, conn: AsyncConnection, slug: str, *, include_deleted: bool = False) -> TenantInfo:
        query = sa.select(tenants).where(tenants.c.slug == slug)
        if not include_deleted:
            query = query.where(tenants.c.status != "deleted")
        row = (await conn.execute(query)).first()
        if row is None:
            raise TenantNotFoundError(slug)
        return _info(row)

    async def get_by_id(self, conn: AsyncConnection, tenant_id: str) -> TenantInfo:
        query = sa.select(tenants).where(tenants.c.id == tenant_id, tenants.c.status != "deleted")
        row = (await conn.execute(query)).first()
        if row is None:
            raise TenantNotFoundError(tenant_id)
        return _info(row)

    async def steps(self, conn: AsyncConnection, tenant_id: str) -> list[str]:
        steps = await conn.scalar(sa.select(tenants.c.steps).where(tenants.c.id == tenant_id))
        return list(steps or [])

    async def list(
        self, conn: AsyncConnection, *, include_deleted: bool = False, statuses: Collection[str] | None = None
    ) -> Sequence[TenantInfo]:
        query = sa.select(tenants).order_by(tenants.c.slug)
        if statuses is not None:
            query = query.where(tenants.c.status.in_(list(statuses)))
        elif not include_deleted:
            query = query.where(tenants.c.status != "deleted")
        return [_info(row) for row in (await conn.execute(query)).all()]

    async def insert(
        self, conn: AsyncConnection, *, tenant_id: str, slug: str, name: str, plan: str, schema: str
    ) -> TenantInfo:
        """Insert a tenant in ``provisioning``.

        Raises:
            ConflictError: the slug is taken (the unique index decides, so concurrent inserts too).
        """
        now = _now()
        tenant = TenantInfo(
            id=tenant_id,
            slug=slug,
            name=name,
            status="provisioning",
            plan=plan,
            schema=schema,
            version=1,
            created_at=now,
            updated_at=now,
        )
        values = {"settings": {}, "steps": [], "version": 1, "created_at": now, "updated_at": now}
        try:
            await conn.execute(
                tenants.insert().values(
                    id=tenant_id, slug=slug, name=name, status="provisioning", plan=plan, schema_name=schema, **values
                )
            )
        except IntegrityError as exc:
            raise ConflictError(f"tenant slug {slug!r} is already taken", resource="tenant") from exc
        return tenant

    async def _bump(self, conn: AsyncConnection, tenant: TenantInfo, **values: Any) -> TenantInfo:
        now = _now()
        result = await conn.execute(
            tenants.update()
            .where(tenants.c.id == tenant.id, tenants.c.version == tenant.version)
            .values(version=tenant.version + 1, updated_at=now, **values)
        )
        if result.rowcount != 1:
            raise ConflictError(f"tenant {tenant.slug!r} was changed concurrently; retry", resource="tenant")
        status = values.get("status", tenant.status)
        return attrs.evolve(tenant, version=tenant.version + 1, updated_at=now, status=status)

    async def claim(self, conn: AsyncConnection, tenant: TenantInfo) -> TenantInfo:
        """Take over ``tenant`` (bump its version) so that a concurrent worker's next write fails."""
        return await self._bump(conn, tenant)

    async def record_steps(
        self, conn: AsyncConnection, tenant: TenantInfo, steps: Sequence[str], *, status: str | None = None
    ) -> TenantInfo:
        """Store the finished provisioning ``steps`` (and maybe a new status), under the optimistic lock."""
        return await self._bump(conn, tenant, steps=list(steps), **({"status": status} if status else {}))

    async def set_status(self, conn: AsyncConnection, tenant: TenantInfo, status: str) -> TenantInfo:
        """Move ``tenant`` to ``status`` if nobody changed it since it was read (optimistic lock)."""
        return await self._bump(conn, tenant, status=status)

    async def count_active(self, conn: AsyncConnection) -> int:
        """How many tenants are in state ``active`` (the ``active_tenants`` gauge)."""
        count = await conn.scalar(sa.select(sa.func.count()).select_from(tenants).where(tenants.c.status == "active"))
        return int(count or 0)

    async def delete_row(self, conn: AsyncConnection, tenant_id: str) -> None:
        await conn.execute(tenant_plugins.delete().where(tenant_plugins.c.tenant_id == tenant_id))
        await conn.execute(tenants.delete().where(tenants.c.id == tenant_id))

    # ------------------------------------------------------------- plugin installs

    async def installed_plugins(self, conn: AsyncConnection, tenant_id: str) -> dict[str, tuple[str, str]]:
        return {name: (p.version, p.status) for name, p in (await self.plugins_of(conn, tenant_id)).items()}

    async def plugins_of(self, conn: AsyncConnection, tenant_id: str) -> dict[str, TenantPlugin]:
        rows = await conn.execute(sa.select(tenant_plugins).where(tenant_plugins.c.tenant_id == tenant_id))
        return {row.plugin: _plugin(row) for row in rows}

    async def all_plugins(self, conn: AsyncConnection) -> dict[str, dict[str, TenantPlugin]]:
        """Every install of every tenant, ``{tenant_id: {plugin: install}}``, in one query."""
        found: dict[str, dict[str, TenantPlugin]] = {}
        for row in await conn.execute(sa.select(tenant_plugins)):
            found.setdefault(row.tenant_id, {})[row.plugin] = _plugin(row)
        return found

    async def upsert_plugin(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        plugin: str,
        version: str,
        status: str,
        *,
        target_revision: str | None = None,
    ) -> None:
        now = _now()
        values = {"version": version, "status": status, "target_revision": target_revision, "updated_at": now}
        updated = await conn.execute(
            tenant_plugins.update()
            .where(tenant_plugins.c.tenant_id == tenant_id, tenant_plugins.c.plugin == plugin)
            .values(**values)
        )
        if updated.rowcount == 0:
            await conn.execute(
                tenant_plugins.insert().values(
                    tenant_id=tenant_id, plugin=plugin, config={}, installed_at=now, **values
                )
            )

    async def add_plugins(self, conn: AsyncConnection, tenant_id: str, versions: dict[str, str]) -> None:
        """Record a new tenant's plugins (``{plugin: version}``), enabled at the head, in one statement."""
        if not versions:
            return
        await conn.execute(
            tenant_plugins.delete().where(
                tenant_plugins.c.tenant_id == tenant_id, tenant_plugins.c.plugin.in_(list(versions))
            )
        )
        now = _now()
        rows: list[dict[str, Any]] = [
            {
                "tenant_id": tenant_id,
                "plugin": plugin,
                "version": version,
                "status": "enabled",
                "config": {},
                "target_revision": None,
                "installed_at": now,
                "updated_at": now,
            }
            for plugin, version in versions.items()
        ]
        await conn.execute(tenant_plugins.insert(), rows)

    async def plugin_of(
        self, conn: AsyncConnection, tenant_id: str, plugin: str, *, for_update: bool = False
    ) -> TenantPlugin | None:
        """One install, or None; ``for_update`` locks the row (PostgreSQL) for a read-modify-write."""
        query = sa.select(tenant_plugins).where(
            tenant_plugins.c.tenant_id == tenant_id, tenant_plugins.c.plugin == plugin
        )
        row = (await conn.execute(query.with_for_update() if for_update else query)).first()
        return None if row is None else _plugin(row)

    async def set_plugin_config(
        self, conn: AsyncConnection, tenant_id: str, plugin: str, config: dict[str, Any]
    ) -> bool:
        """Replace an install's ``config``; False when there is no such install."""
        result = await conn.execute(
            tenant_plugins.update()
            .where(tenant_plugins.c.tenant_id == tenant_id, tenant_plugins.c.plugin == plugin)
            .values(config=config, updated_at=_now())
        )
        return bool(result.rowcount == 1)

    async def remove_plugin(self, conn: AsyncConnection, tenant_id: str, plugin: str) -> None:
        await conn.execute(
            tenant_plugins.delete().where(tenant_plugins.c.tenant_id == tenant_id, tenant_plugins.c.plugin == plugin)
        )
