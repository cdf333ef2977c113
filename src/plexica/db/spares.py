"""Warm spares (PostgreSQL): tenant schemas cloned from the template ahead of time.

Creating a schema's tables is bounded below by PostgreSQL's own DDL cost (catalog rows and a
file per table and index: tens of milliseconds for a base of a dozen tables), however the DDL is
produced. A spare moves that cost out of sign-up: provisioning takes a spare whose fingerprint
matches the current stream heads and renames it (``ALTER SCHEMA ... RENAME``, one catalog row,
independent of how many schemas exist). Spares of an older fingerprint are never taken; a refill
drops them and tops the pool up again.

``core.schema_spares`` lists the spares; ``FOR UPDATE SKIP LOCKED`` hands each one to exactly one
provisioning transaction.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from plexica.db.metadata import core_metadata

__all__ = ["SPARE_PREFIX", "add_spare", "list_spares", "remove_spare", "schema_spares", "take_spare"]

#: Spare schemas are named ``plexica_spare_<hex>``: never a tenant's ``tenant_*``.
SPARE_PREFIX = "plexica_spare"

schema_spares = sa.Table(
    "schema_spares",
    core_metadata,
    sa.Column("schema_name", sa.String(63), primary_key=True),
    sa.Column("fingerprint", sa.String(32), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


async def take_spare(conn: AsyncConnection, fingerprint: str) -> str | None:
    """Remove and return one spare of ``fingerprint`` (None: none left); others skip locked rows."""
    oldest = (
        sa.select(schema_spares.c.schema_name)
        .where(schema_spares.c.fingerprint == fingerprint)
        .order_by(schema_spares.c.created_at)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    query = sa.delete(schema_spares).where(schema_spares.c.schema_name == oldest).returning(schema_spares.c.schema_name)
    return (await conn.execute(query)).scalar_one_or_none()


async def list_spares(conn: AsyncConnection) -> dict[str, str]:
    """``{schema: fingerprint}`` of every spare."""
    rows = await conn.execute(sa.select(schema_spares.c.schema_name, schema_spares.c.fingerprint))
    return {row.schema_name: row.fingerprint for row in rows}


async def add_spare(conn: AsyncConnection, schema: str, fingerprint: str) -> None:
    await conn.execute(
        schema_spares.insert().values(schema_name=schema, fingerprint=fingerprint, created_at=dt.datetime.now(dt.UTC))
    )


async def remove_spare(conn: AsyncConnection, schema: str) -> bool:
    """Unlist ``schema``; False if another transaction took it first."""
    result = await conn.execute(sa.delete(schema_spares).where(schema_spares.c.schema_name == schema))
    return result.rowcount == 1
