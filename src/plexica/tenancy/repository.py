"""Queries on the tenant registry. Parameterized SQLAlchemy Core only."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from plexica.tenancy.models import tenant_plugins, tenants
from plexica_sdk.errors import ConflictError, TenantNotFoundError
from plexica_sdk.types import TenantInfo

__all__ = ["TenantRepository"]


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
        row = (
            await conn.execute(sa.select(tenants).where(tenants.c.id == tenant_id, tenants.c.status != "deleted"))
        ).first()
        if row is None:
            raise TenantNotFoundError(tenant_id)
        return _info(row)

    async def steps(self, conn: AsyncConnection, tenant_id: str) -> list[str]:
        steps = await conn.scalar(sa.select(tenants.c.steps).where(tenants.c.id == tenant_id))
        return list(steps or [])

    async def list(self, conn: AsyncConnection, *, include_deleted: bool = False) -> Sequence[TenantInfo]:
        query = sa.select(tenants).order_by(tenants.c.slug)
        if not include_deleted:
            query = query.where(tenants.c.status != "deleted")
        return [_info(row) for row in (await conn.execute(query)).all()]

    async def insert(
        self, conn: AsyncConnection, *, tenant_id: str, slug: str, name: str, plan: str, schema: str
    ) -> TenantInfo:
        now = _now()
        existing = await conn.scalar(sa.select(tenants.c.status).where(tenants.c.slug == slug))
        if existing is not None:
            raise ConflictError(f"tenant slug {slug!r} is already taken", resource="tenant")
        await conn.execute(
            tenants.insert().values(
                id=tenant_id,
                slug=slug,
                name=name,
                status="provisioning",
                plan=plan,
                schema_name=schema,
                settings={},
                steps=[],
                version=1,
                created_at=now,
                updated_at=now,
            )
        )
        return await self.get(conn, slug)

    async def record_step(self, conn: AsyncConnection, tenant_id: str, step: str) -> None:
        done = await self.steps(conn, tenant_id)
        if step not in done:
            await conn.execute(
                tenants.update().where(tenants.c.id == tenant_id).values(steps=[*done, step], updated_at=_now())
            )

    async def set_status(self, conn: AsyncConnection, tenant: TenantInfo, status: str) -> TenantInfo:
        """Move ``tenant`` to ``status`` if nobody changed it since it was read (optimistic lock)."""
        result = await conn.execute(
            tenants.update()
            .where(tenants.c.id == tenant.id, tenants.c.version == tenant.version)
            .values(status=status, version=tenant.version + 1, updated_at=_now())
        )
        if result.rowcount != 1:
            raise ConflictError(f"tenant {tenant.slug!r} was changed concurrently; retry", resource="tenant")
        return await self.get(conn, tenant.slug, include_deleted=True)

    async def delete_row(self, conn: AsyncConnection, tenant_id: str) -> None:
        await conn.execute(tenants.delete().where(tenants.c.id == tenant_id))

    # ------------------------------------------------------------- plugin installs

    async def installed_plugins(self, conn: AsyncConnection, tenant_id: str) -> dict[str, tuple[str, str]]:
        rows = await conn.execute(
            sa.select(tenant_plugins.c.plugin, tenant_plugins.c.version, tenant_plugins.c.status).where(
                tenant_plugins.c.tenant_id == tenant_id
            )
        )
        return {row.plugin: (row.version, row.status) for row in rows}

    async def upsert_plugin(
        self, conn: AsyncConnection, tenant_id: str, plugin: str, version: str, status: str
    ) -> None:
        now = _now()
        updated = await conn.execute(
            tenant_plugins.update()
            .where(tenant_plugins.c.tenant_id == tenant_id, tenant_plugins.c.plugin == plugin)
            .values(version=version, status=status, updated_at=now)
        )
        if updated.rowcount == 0:
            await conn.execute(
                tenant_plugins.insert().values(
                    tenant_id=tenant_id,
                    plugin=plugin,
                    version=version,
                    status=status,
                    config={},
                    installed_at=now,
                    updated_at=now,
                )
            )

    async def remove_plugin(self, conn: AsyncConnection, tenant_id: str, plugin: str) -> None:
        await conn.execute(
            tenant_plugins.delete().where(tenant_plugins.c.tenant_id == tenant_id, tenant_plugins.c.plugin == plugin)
        )
