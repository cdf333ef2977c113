"""The notes migration: what it creates in each tenant's schema, and what the host records."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from plexica_sdk.testing import ProvisionedTenant, RunningHost

pytestmark = pytest.mark.anyio


async def test_migration_creates_the_notes_table_and_index_in_the_tenant_schema(
    plexica_host: RunningHost, tenant: ProvisionedTenant
) -> None:
    schema = tenant.info.schema

    def inspect(conn: sa.Connection) -> tuple[set[str], set[str]]:
        inspector = sa.inspect(conn)
        columns = {column["name"] for column in inspector.get_columns("notes", schema=schema)}
        indexes = {index["name"] or "" for index in inspector.get_indexes("notes", schema=schema)}
        return columns, indexes

    async with plexica_host.platform.db.tenant_connection(schema) as conn:
        columns, indexes = await conn.run_sync(inspect)

    assert columns == {"id", "title", "body", "author_id", "created_at", "updated_at"}
    assert "ix_notes_created_at" in indexes


async def test_install_records_the_plugin_version_and_head_revision(
    plexica_host: RunningHost, tenant: ProvisionedTenant
) -> None:
    installed = await plexica_host.platform.tenants.installed_plugins(tenant.info)
    assert installed["notes"][0] == "1.0.0"


async def test_uninstall_then_install_leaves_a_fresh_empty_table(
    plexica_host: RunningHost, tenant: ProvisionedTenant
) -> None:
    tenants = plexica_host.platform.tenants
    # The welcome note is written by an event handler after provisioning; let it land first, or a
    # late (remote, loaded machine) delivery would write it into the reinstalled table.
    for _ in range(300):
        async with plexica_host.platform.db.tenant_connection(tenant.info.schema) as conn:
            table = sa.table("notes", schema=tenant.info.schema)
            if await conn.scalar(sa.select(sa.func.count()).select_from(table)):
                break
        await asyncio.sleep(0.05)
    await tenants.uninstall_plugin(tenant.slug, "notes")
    async with plexica_host.platform.db.tenant_connection(tenant.info.schema) as conn:
        tables = await conn.run_sync(lambda c: sa.inspect(c).get_table_names(schema=tenant.info.schema))
    assert "notes" not in tables

    await tenants.install_plugin(tenant.slug, "notes")
    async with plexica_host.platform.db.tenant_connection(tenant.info.schema) as conn:
        count = await conn.scalar(sa.select(sa.func.count()).select_from(sa.table("notes", schema=tenant.info.schema)))
    assert count == 0
