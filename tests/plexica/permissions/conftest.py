"""Fixtures for the permission engine: databases (SQLite and PostgreSQL), caches (memory and Redis),
migrated tenants with people in them, a test plugin, and engines over all of it."""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa

from plexica.cache import MemoryCache, RedisCache
from plexica.db.engine import Database, PostgresDatabase, SqliteDatabase
from plexica.db.migrations import TENANT_STREAM, upgrade
from plexica.db.migrations.runner import alembic_turn
from plexica.permissions import PermissionEngine, PermissionService
from plexica.plugins import PluginManager, discover
from plexica.settings import DatabaseSettings
from plexica.tenancy.naming import schema_name
from plexica_sdk import hookimpl
from plexica_sdk.protocols import Cache
from plexica_sdk.types import PermissionDef, PluginManifest, Policy, Principal, RoleDef, TenantContext

AUTHORS_EDIT_OWN = Policy(
    id="authors-edit-own",
    effect="allow",
    target="tasks:task:write",
    condition={"attribute": "resource.author_id", "operator": "equals", "value": {"ref": "subject.id"}},
)


class TasksPlugin:
    """A plugin with permissions, default grants (to a system role and to its own role) and a policy."""

    name = "tasks"

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(
            name=self.name,
            version="1.0.0",
            permissions=(
                PermissionDef(key=f"{self.name}:task:read", description="Read tasks"),
                PermissionDef(key=f"{self.name}:task:write", description="Write tasks"),
            ),
            default_roles=(
                RoleDef(name="member", permissions=(f"{self.name}:task:read",)),
                RoleDef(name="workspace_viewer", permissions=(f"{self.name}:task:read",)),
                RoleDef(name=f"{self.name}-editor", permissions=(f"{self.name}:task:*",), description="Edits tasks"),
            ),
        )

    @hookimpl
    def plexica_policies(self) -> Sequence[Policy]:
        return [AUTHORS_EDIT_OWN] if self.name == "tasks" else []


class BoardsPlugin(TasksPlugin):
    name = "boards"


def make_plugins(*plugins: object) -> PluginManager:
    return PluginManager(discover(objects=plugins or (TasksPlugin(),), use_entry_points=False))


# ------------------------------------------------------------------ backends


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    db: Database
    if request.param == "sqlite":
        db = SqliteDatabase(tmp_path / "db")
    else:
        db = PostgresDatabase(DatabaseSettings(url=request.getfixturevalue("postgres_url"), pool_size=4))
    async with db:
        yield db


@pytest.fixture
async def sqlite_database(tmp_path: Path) -> AsyncIterator[Database]:
    async with SqliteDatabase(tmp_path / "db") as db:
        yield db


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    backend: Any = MemoryCache() if request.param == "memory" else RedisCache(request.getfixturevalue("redis_url"))
    async with backend:
        yield backend


# ------------------------------------------------------------------- tenants

_people = sa.MetaData()
_users = sa.Table(
    "users",
    _people,
    sa.Column("id", sa.String),
    sa.Column("status", sa.String),
    sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("last_seen_at", sa.DateTime(timezone=True)),
)
_teams = sa.Table(
    "teams",
    _people,
    sa.Column("id", sa.String),
    sa.Column("name", sa.String),
    sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
)
_team_members = sa.Table(
    "team_members",
    _people,
    sa.Column("team_id", sa.String),
    sa.Column("user_id", sa.String),
    sa.Column("created_at", sa.DateTime(timezone=True)),
)
_workspaces = sa.Table(
    "workspaces",
    _people,
    sa.Column("id", sa.String),
    sa.Column("name", sa.String),
    sa.Column("slug", sa.String),
    sa.Column("path", sa.String),
    sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
)
_workspace_members = sa.Table(
    "workspace_members",
    _people,
    sa.Column("workspace_id", sa.String),
    sa.Column("user_id", sa.String),
    sa.Column("role", sa.String),
    sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
)


@attrs.define
class Tenant:
    """A migrated tenant schema and helpers to put people in it and to build request contexts."""

    db: Database
    ctx: TenantContext
    users: set[str] = attrs.Factory(set)
    workspaces: set[str] = attrs.Factory(set)

    @property
    def slug(self) -> str:
        return self.ctx.slug

    def request(self, user: str = "ann", roles: Iterable[str] = (), workspace: str | None = None) -> TenantContext:
        """A fresh context, as one request of ``user`` would get."""
        principal = Principal(id=user, tenant_slug=self.slug, username=user, roles=tuple(roles))
        return attrs.evolve(self.ctx, user=principal, workspace_id=workspace)

    async def add_users(self, session: Any, *users: str) -> None:
        now = dt.datetime.now(dt.UTC)
        for user in sorted(set(users) - self.users):
            await session.execute(_users.insert().values(id=user, status="active", created_at=now, last_seen_at=now))
            self.users.add(user)

    async def add_team(self, team: str, members: Collection[str]) -> None:
        now = dt.datetime.now(dt.UTC)
        async with self.db.tenant_session(self.ctx.schema) as session:
            await self.add_users(session, *members)
            await session.execute(_teams.insert().values(id=team, name=team, created_at=now, updated_at=now))
            for user in members:
                await session.execute(_team_members.insert().values(team_id=team, user_id=user, created_at=now))

    async def add_member(self, workspace: str, user: str, role: str) -> None:
        now = dt.datetime.now(dt.UTC)
        async with self.db.tenant_session(self.ctx.schema) as session:
            await self.add_users(session, user)
            if workspace not in self.workspaces:
                values = {"id": workspace, "name": workspace, "slug": workspace, "path": f"/{workspace}/"}
                await session.execute(_workspaces.insert().values(**values, created_at=now, updated_at=now))
                self.workspaces.add(workspace)
            await session.execute(
                _workspace_members.insert().values(
                    workspace_id=workspace, user_id=user, role=role, created_at=now, updated_at=now
                )
            )


MakeTenant = Callable[..., Awaitable[Tenant]]


@pytest.fixture
async def make_tenant(database: Database) -> AsyncIterator[MakeTenant]:
    schemas: list[str] = []

    async def make(slug: str = "acme", tenant_id: str | None = None) -> Tenant:
        # PostgreSQL is shared between tests (and runs): a random suffix keeps schemas apart.
        unique = slug if database.dialect == "sqlite" else f"{slug}-{secrets.token_hex(4)}"
        schema = schema_name(unique)
        await database.create_schema(schema)
        schemas.append(schema)
        async with alembic_turn(), database.tenant_connection(schema) as conn:
            await conn.run_sync(upgrade, TENANT_STREAM, schema)
        ctx = TenantContext(tenant_id=tenant_id or str(uuid.uuid4()), slug=unique, schema=schema)
        return Tenant(database, ctx)

    yield make
    for schema in schemas:
        with contextlib.suppress(Exception):
            await database.drop_schema(schema)


# ------------------------------------------------------------------- engines


@attrs.define
class Installed:
    """Which plugins each tenant has enabled (what the core registry would say)."""

    by_tenant: dict[str, set[str]] = attrs.Factory(dict)
    default: set[str] = attrs.Factory(lambda: {"tasks"})

    async def __call__(self, ctx: TenantContext) -> Collection[str]:
        return self.by_tenant.get(ctx.tenant_id, self.default)


@pytest.fixture
def installed() -> Installed:
    return Installed()


MakeEngine = Callable[..., PermissionEngine]


@pytest.fixture
def make_engine(database: Database, installed: Installed) -> MakeEngine:
    def make(
        cache: Cache | None = None, plugins: Sequence[object] = (), with_installed: bool = True, **kwargs: Any
    ) -> PermissionEngine:
        return PermissionEngine(
            db=database,
            cache=cache if cache is not None else MemoryCache(),
            plugins=make_plugins(*plugins),
            installed=installed if with_installed else None,
            **kwargs,
        )

    return make


@pytest.fixture
def engine(make_engine: MakeEngine) -> PermissionEngine:
    return make_engine()


@pytest.fixture
def service(database: Database, engine: PermissionEngine) -> PermissionService:
    return PermissionService(database, engine)
