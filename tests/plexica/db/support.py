"""Shared by the database and tenancy tests: fresh PostgreSQL databases, a test plugin with migrations.

Every PostgreSQL test gets a database of its own (``CREATE DATABASE ... STRATEGY FILE_COPY`` takes
~50 ms), so fleet-wide operations never see another test's tenants.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from plexica.platform import Platform
from plexica.settings import Settings, load_settings
from plexica_sdk import Host, PluginManifest, TenantContext, hookimpl

__all__ = [
    "ITEMS_REVISIONS",
    "EnvItemsPlugin",
    "ItemsPlugin",
    "MakePlatform",
    "columns_of",
    "database_url",
    "fresh_postgres_database",
    "make_platform",
    "make_platform_settings",
    "write_migrations",
]

MakePlatform = Callable[..., Awaitable[Platform]]


@contextlib.asynccontextmanager
async def fresh_postgres_database(server_url: str) -> AsyncIterator[str]:
    """Create an empty database on the server of ``server_url``; yield its URL; drop it after."""
    name = f"plexica_test_{secrets.token_hex(5)}"
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'CREATE DATABASE "{name}" STRATEGY FILE_COPY')
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.dispose()


@pytest.fixture(
    params=[pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)]
)
async def database_url(request: pytest.FixtureRequest, anyio_backend: str) -> AsyncIterator[str | None]:
    """None (SQLite files) or the URL of a fresh PostgreSQL database: each test runs on both."""
    if request.param == "sqlite":
        yield None
    else:
        async with fresh_postgres_database(request.getfixturevalue("postgres_url")) as url:
            yield url


@pytest.fixture
async def make_platform(database_url: str | None, tmp_path: Path, anyio_backend: str) -> AsyncIterator[MakePlatform]:
    """Enter platforms on the test's database (all share it); every one is closed at teardown."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(*plugins: object, **database: Any) -> Platform:
            settings = make_platform_settings(tmp_path / "data", database_url, **database)
            return await stack.enter_async_context(Platform(settings, plugins=plugins))

        yield make


def make_platform_settings(data_dir: Path, url: str | None, **database: Any) -> Settings:
    """Test settings: SQLite files under ``data_dir`` when ``url`` is None, else that PostgreSQL."""
    db: dict[str, Any] = {"url": url, **database} if url else {}
    return load_settings(environ={}, data_dir=str(data_dir), load_entry_points=False, environment="test", database=db)


_REVISION = '''\
"""{doc}

Revision ID: {revision}
Revises: {down}
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = {revision!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def _schema() -> str | None:
    return (op.get_bind().get_execution_options().get("schema_translate_map") or {{}}).get(None)


def upgrade() -> None:
{upgrade}


def downgrade() -> None:
{downgrade}
'''

#: The test plugin's chain: a table, then a column and a unique index (fails on duplicate codes),
#: then a second table.
ITEMS_REVISIONS: dict[str, tuple[str, str, str]] = {
    "items_0001": (
        "items table",
        """op.create_table(
    "items",
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("code", sa.String(50), nullable=False),
    sa.Column("note", sa.Text(), nullable=True),
)""",
        'op.drop_table("items")',
    ),
    "items_0002": (
        "quantity, and unique codes",
        """op.add_column("items", sa.Column("qty", sa.Integer(), nullable=True), schema=_schema())
op.create_index("uq_items_code", "items", ["code"], unique=True, schema=_schema())""",
        """op.drop_index("uq_items_code", table_name="items", schema=_schema())
op.drop_column("items", "qty", schema=_schema())""",
    ),
    "items_0003": (
        "item tags",
        """op.create_table(
    "item_tags",
    sa.Column("item_id", sa.String(36), sa.ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("tag", sa.String(50), primary_key=True),
)""",
        'op.drop_table("item_tags")',
    ),
}


def write_migrations(directory: Path, count: int, revisions: dict[str, tuple[str, str, str]] | None = None) -> str:
    """Write the first ``count`` revisions of ``revisions`` (default: the items chain) as a script dir."""
    chain = list((revisions or ITEMS_REVISIONS).items())[:count]
    versions = directory / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    down = None
    for revision, (doc, up, back) in chain:
        (versions / f"{revision}.py").write_text(
            _REVISION.format(
                doc=doc,
                revision=revision,
                down=down,
                upgrade=textwrap.indent(up, "    "),
                downgrade=textwrap.indent(back, "    "),
            ),
            encoding="utf-8",
        )
        down = revision
    return str(directory)


@attrs.define(eq=False)
class ItemsPlugin:
    """A plugin with tenant tables that records its lifecycle hook calls and can be told to fail."""

    migrations: str | None
    name: str = "items"
    version: str = "1.0.0"
    calls: list[tuple[str, str]] = attrs.Factory(list)
    failing: set[str] = attrs.Factory(set)
    on_deleting: Callable[[TenantContext, Host], Any] | None = None

    def _called(self, hook: str, tenant: TenantContext) -> None:
        self.calls.append((hook, tenant.slug))
        if hook in self.failing:
            raise RuntimeError(f"{hook} failed on purpose")

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(name=self.name, version=self.version, description="test plugin with tables")

    @hookimpl
    def plexica_tenant_migrations(self) -> str | None:
        return self.migrations

    @hookimpl
    def plexica_plugin_installed(self, tenant: TenantContext, version: str) -> None:
        self._called("installed", tenant)

    @hookimpl
    def plexica_plugin_upgraded(self, tenant: TenantContext, from_version: str, to_version: str) -> None:
        self._called(f"upgraded:{from_version}->{to_version}", tenant)

    @hookimpl
    def plexica_plugin_uninstalled(self, tenant: TenantContext) -> None:
        self._called("uninstalled", tenant)

    @hookimpl
    def plexica_tenant_provisioned(self, tenant: TenantContext) -> None:
        self._called("provisioned", tenant)

    @hookimpl
    async def plexica_tenant_deleting(self, tenant: TenantContext, host: Host) -> None:
        self._called("deleting", tenant)
        if self.on_deleting is not None:
            await self.on_deleting(tenant, host)


class EnvItemsPlugin(ItemsPlugin):
    """The items plugin as the CLI loads it (``module:attribute``): configured by the environment.

    ``TEST_ITEMS_PLUGIN_MIGRATIONS``: its script directory; ``TEST_ITEMS_PLUGIN_VERSION``: its
    version (default 1.0.0); ``TEST_ITEMS_PLUGIN_CALLS``: a file each hook call is appended to as
    ``hook slug`` (the instance dies with its command).
    """

    def __init__(self) -> None:
        super().__init__(
            os.environ.get("TEST_ITEMS_PLUGIN_MIGRATIONS"), version=os.environ.get("TEST_ITEMS_PLUGIN_VERSION", "1.0.0")
        )

    def _called(self, hook: str, tenant: TenantContext) -> None:
        log = os.environ.get("TEST_ITEMS_PLUGIN_CALLS")
        if log:
            with open(log, "a", encoding="utf-8") as handle:
                handle.write(f"{hook} {tenant.slug}\n")
        super()._called(hook, tenant)


async def columns_of(conn: AsyncConnection, schema: str, table: str) -> set[str] | None:
    """The columns of ``schema.table`` (None: no such table), on either dialect."""

    def inspect(sync: sa.Connection) -> set[str] | None:
        inspector = sa.inspect(sync)
        if not inspector.has_table(table, schema=schema):
            return None
        return {column["name"] for column in inspector.get_columns(table, schema=schema)}

    return await conn.run_sync(inspect)
