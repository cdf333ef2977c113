"""Isolation by construction: a tiny pool shared by two tenants never lets one read the other's rows.

The tenant is bound per statement (``schema_translate_map``), never per connection, so the same
pooled connection can serve both tenants back to back with nothing carried over; that is also
what makes PgBouncer's transaction pooling safe.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from plexica.db.engine import Database, PostgresDatabase, SqliteDatabase
from plexica.db.migrations import TENANT_STREAM
from plexica.db.migrator import TenantMigrator
from plexica.db.templates import TemplateProvisioner
from plexica.plugins import PluginManager, discover
from plexica.settings import DatabaseSettings
from plexica_sdk import context
from plexica_sdk.errors import TenantContextMissingError, ValidationError
from plexica_sdk.types import TenantContext

pytestmark = pytest.mark.anyio

TENANTS = {"acme": "tenant_acme", "globex": "tenant_globex"}
OPERATIONS_PER_TENANT = 200

users = sa.Table(
    "users",
    sa.MetaData(),
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("username", sa.String(255)),
    sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("last_seen_at", sa.DateTime(timezone=True)),
)


@pytest.fixture
async def db(database_url: str | None, tmp_path: Path, anyio_backend: str) -> AsyncIterator[Database]:
    """Two tenant schemas at head behind a pool of two connections (per tenant file on SQLite)."""
    database: Database
    if database_url is None:
        database = SqliteDatabase(tmp_path / "db", pool_size=2, max_overflow=0)
    else:
        database = PostgresDatabase(DatabaseSettings(url=database_url, pool_size=2, max_overflow=0))
    async with database:
        await TenantMigrator(database, PluginManager(discover(use_entry_points=False))).migrate_core()
        templates = TemplateProvisioner(database)
        for schema in TENANTS.values():
            await database.create_schema(schema)
            await templates.provision(schema, [TENANT_STREAM], tenant_id=None)
        yield database


async def test_interleaved_operations_through_two_connections_never_cross_tenants(db: Database) -> None:
    statements: list[str] = []
    backends: dict[Any, set[str]] = {}
    in_flight = peak = 0
    now = dt.datetime.now(dt.UTC)

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    async def operation(slug: str, number: int) -> list[str]:
        nonlocal in_flight, peak
        schema = TENANTS[slug]
        own = f"{slug}-{number}"
        with context.use(TenantContext(tenant_id=slug, slug=slug, schema=schema)):
            async with db.tenant_session() as session:
                await session.execute(users.insert().values(id=own, username=slug, created_at=now, last_seen_at=now))
                in_flight += 1  # the session holds a pooled connection from its first statement on
                peak = max(peak, in_flight)
                await asyncio.sleep(0)  # hand the loop to the other tenant while holding the connection
                if number % 3 == 0:
                    await session.execute(users.update().where(users.c.id == own).values(username=f"{slug}!"))
                if db.dialect == "postgresql":
                    backends.setdefault(await session.scalar(sa.text("SELECT pg_backend_pid()")), set()).add(slug)
                seen = list((await session.execute(sa.select(users.c.id))).scalars())
                in_flight -= 1
        async with db.tenant_connection(schema) as conn:  # the explicit-schema path, too
            seen += list((await conn.execute(sa.select(users.c.username))).scalars())
        return seen

    work = [(slug, n) for slug in TENANTS for n in range(OPERATIONS_PER_TENANT)]
    random.Random(6).shuffle(work)
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    try:
        seen = await asyncio.gather(*(operation(slug, n) for slug, n in work))
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)

    crossed = [
        value for (slug, _), values in zip(work, seen, strict=True) for value in values if not value.startswith(slug)
    ]
    assert crossed == []
    if db.dialect == "postgresql":
        assert peak == 2  # both connections were busy at once...
        assert len(backends) == 2 and all(slugs == set(TENANTS) for slugs in backends.values())  # ...for both tenants
    else:
        assert 2 <= peak <= 4  # a pool of two per tenant file
    assert not [s for s in statements if "search_path" in s.lower() or s.lstrip().lower().startswith("set ")]
    for schema in TENANTS.values():
        async with db.tenant_connection(schema) as conn:
            assert await conn.scalar(sa.select(sa.func.count()).select_from(users)) == OPERATIONS_PER_TENANT


async def test_a_pooled_connection_carries_no_tenant_state(db: Database) -> None:
    for schema in TENANTS.values():
        async with db.tenant_connection(schema) as conn:
            if db.dialect == "postgresql":  # no search_path: PgBouncer's transaction mode is safe
                assert await conn.scalar(sa.text("SELECT current_setting('search_path')")) == '"$user", public'
            else:  # a tenant's SQLite connection cannot even see the other tenant's file
                attached = {row[1] for row in await conn.execute(sa.text("PRAGMA database_list"))}
                assert attached == {"main", schema}


async def test_tenant_session_without_a_context_raises(db: Database) -> None:
    with pytest.raises(TenantContextMissingError):
        async with db.tenant_session():
            pass


UNSAFE_NAMES = ['tenant_a"; DROP SCHEMA core CASCADE; --', "Tenant_Upper", "t" * 64, "tenant a", "", "tenant-dash"]


async def test_unsafe_schema_names_are_refused_before_any_sql(db: Database) -> None:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    try:
        for name in UNSAFE_NAMES:
            with pytest.raises(ValidationError):
                await db.create_schema(name)
            with pytest.raises(ValidationError):
                await db.drop_schema(name)
            with pytest.raises(ValidationError):
                async with db.tenant_connection(name):
                    pass
            with pytest.raises(ValidationError):
                await TemplateProvisioner(db).provision(name, [TENANT_STREAM], tenant_id=None)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)
    assert statements == []
    async with db.core_connection() as conn:  # core is intact
        assert await conn.scalar(sa.text("SELECT count(*) FROM core.tenants")) == 0
