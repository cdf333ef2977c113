"""Shared by the identity and workspace tests: a migrated tenant schema on SQLite and on PostgreSQL.

Each PostgreSQL case gets a database of its own, so ``core.super_admins`` and the tenant schema
start empty and no other test can see them.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from plexica.cache import MemoryCache
from plexica.db.engine import Database, PostgresDatabase, SqliteDatabase
from plexica.db.metadata import CORE_SCHEMA
from plexica.db.migrations import CORE_STREAM, TENANT_STREAM, upgrade
from plexica.events.envelope import source_for
from plexica.identity.super_admins import SuperAdminService
from plexica.identity.teams import TeamService
from plexica.identity.users import UserService
from plexica.settings import DatabaseSettings
from plexica.workspaces.service import WorkspaceService
from plexica_sdk.types import Event, Principal, TenantContext
from tests.plexica.db.support import fresh_postgres_database

__all__ = ["Published", "World", "principal", "world"]


@attrs.define
class Published:
    """An ``EventRecorder`` keeping what the services record, as ``(event type, data, workspace id)``.

    Only events of transactions that committed are kept, as the outbox would.
    """

    events: list[tuple[str, dict[str, Any], str | None]] = attrs.Factory(list)

    async def record(
        self,
        conn: AsyncConnection,
        event_type: str,
        data: Mapping[str, Any],
        ctx: TenantContext | None,
        *,
        subject: str | None = None,
    ) -> Event:
        assert subject is not None and conn.in_transaction()
        entry = (event_type, dict(data), ctx.workspace_id if ctx else None)
        sa.event.listen(conn.sync_connection, "commit", lambda _conn: self.events.append(entry), once=True)
        return Event(type=event_type, source=source_for("core"), data=dict(data), subject=subject)

    def of(self, event_type: str) -> list[dict[str, Any]]:
        return [data for kind, data, _ in self.events if kind == event_type]


@attrs.define
class World:
    """A migrated tenant schema and the people services working on it."""

    db: Database
    ctx: TenantContext
    cache: MemoryCache
    published: Published
    users: UserService
    teams: TeamService
    super_admins: SuperAdminService
    workspaces: WorkspaceService

    @property
    def dialect(self) -> str:
        return self.db.dialect

    async def enrol(self, *user_ids: str) -> None:
        for user_id in user_ids:
            await self.users.admit(self.ctx, principal(user_id))


def principal(user_id: str, **claims: Any) -> Principal:
    claims.setdefault("username", user_id)
    return Principal(id=user_id, tenant_slug="acme", **claims)


@contextlib.asynccontextmanager
async def _database(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Database]:
    if kind == "sqlite":
        async with SqliteDatabase(tmp_path / "db") as db:
            yield db
        return
    async with (
        fresh_postgres_database(request.getfixturevalue("postgres_url")) as url,
        PostgresDatabase(DatabaseSettings(url=url, pool_size=10)) as db,
    ):
        yield db


@pytest.fixture(
    params=[pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)]
)
async def world(request: pytest.FixtureRequest, tmp_path: Path, anyio_backend: str) -> AsyncIterator[World]:
    """Each test runs on SQLite files and on a fresh PostgreSQL database."""
    async with _database(request.param, tmp_path, request) as db:
        schema = f"tenant_t{secrets.token_hex(4)}"
        async with db.core_connection() as conn:
            await conn.run_sync(upgrade, CORE_STREAM, CORE_SCHEMA)
        await db.create_schema(schema)
        async with db.tenant_connection(schema) as conn:
            await conn.run_sync(upgrade, TENANT_STREAM, schema)
        cache = MemoryCache()
        published = Published()
        yield World(
            db=db,
            ctx=TenantContext(tenant_id="t-1", slug="acme", schema=schema),
            cache=cache,
            published=published,
            users=UserService(db=db, cache=cache, events=published),
            teams=TeamService(db=db),
            super_admins=SuperAdminService(db=db, cache=cache),
            workspaces=WorkspaceService(db=db, cache=cache, events=published),
        )
        await db.drop_schema(schema)
