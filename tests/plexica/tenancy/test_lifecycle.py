"""The tenant lifecycle on SQLite and PostgreSQL: provisioning (interrupted at every step), states, deletion."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa

from plexica.db.ledger import read_ledger
from plexica.db.migrations import TENANT_STREAM
from plexica.platform import Platform
from plexica.tenancy.models import tenant_plugins, tenants
from plexica.tenancy.naming import bucket_name
from plexica.tenancy.repository import TenantRepository
from plexica.tenancy.service import STEPS
from plexica_sdk.errors import (
    ConflictError,
    InvalidTenantSlugError,
    PluginCallError,
    TenantNotFoundError,
)
from plexica_sdk.types import TenantContext
from tests.plexica.db.support import ItemsPlugin, MakePlatform, write_migrations

pytestmark = pytest.mark.anyio

items = sa.Table(
    "items",
    sa.MetaData(),
    sa.Column("id", sa.String(36)),
    sa.Column("code", sa.String(50)),
    sa.Column("qty", sa.Integer()),
)
CHECKPOINTS = [f"{step}:{phase}" for step in STEPS for phase in ("done", "recorded")]


class Crash(BaseException):
    """The process dies here: unlike an exception, nothing gets to clean up."""


async def host_with_items(make_platform: MakePlatform, tmp_path: Path) -> tuple[Platform, ItemsPlugin]:
    plugin = ItemsPlugin(write_migrations(tmp_path / "items", 2))
    return await make_platform(plugin), plugin


async def registry_rows(platform: Platform, schema: str) -> tuple[int, int, int]:
    """Rows left for a schema: (tenants, tenant_plugins, ledger)."""
    async with platform.db.core_connection() as conn:
        tenant_ids = list(
            (await conn.execute(sa.select(tenants.c.id).where(tenants.c.schema_name == schema))).scalars()
        )
        plugins = await conn.scalar(
            sa.select(sa.func.count()).select_from(tenant_plugins).where(tenant_plugins.c.tenant_id.in_(tenant_ids))
        )
        ledger = [key for key in await read_ledger(conn) if key[0] == schema]
    return len(tenant_ids), plugins or 0, len(ledger)


async def assert_usable(platform: Platform, slug: str) -> None:
    tenant = await platform.tenants.get(slug)
    assert tenant.status == "active"
    async with platform.db.tenant_connection(tenant.schema) as conn:
        await conn.execute(items.insert().values(id="probe", code="probe", qty=1))
        assert await conn.scalar(sa.select(sa.func.count()).select_from(items)) == 1
    async with platform.db.core_connection() as conn:
        ledger = await read_ledger(conn, [tenant.schema])
    assert {stream: entry.revision for (_, stream), entry in ledger.items()} == {
        "tenant": TENANT_STREAM.head,
        "plugin:items": "items_0002",
    }
    assert await platform.tenants.installed_plugins(tenant) == {"items": ("1.0.0", "enabled")}
    await platform.objects.put(bucket_name(slug), "probe.txt", b"ok")


@pytest.mark.parametrize("checkpoint", CHECKPOINTS)
async def test_provisioning_interrupted_after_each_step_resumes_to_a_usable_tenant(
    make_platform: MakePlatform, tmp_path: Path, checkpoint: str
) -> None:
    platform, plugin = await host_with_items(make_platform, tmp_path)

    async def crash(name: str) -> None:
        if name == checkpoint:
            raise Crash(name)

    platform.tenants.checkpoint = crash
    with pytest.raises(Crash):
        await platform.tenants.provision("acme")
    platform.tenants.checkpoint = None
    async with platform.db.core_connection() as conn:
        left = await TenantRepository().get(conn, "acme", include_deleted=True)

    if checkpoint == f"{STEPS[-1]}:recorded":  # the last record is the activation: nothing left to resume
        assert left.status == "active"
        with pytest.raises(ConflictError):
            await platform.tenants.provision("acme")
    else:
        assert left.status == "provisioning"
        resumed = await platform.tenants.provision("acme")
        assert resumed.status == "active" and resumed.id == left.id and resumed.version > left.version
    await assert_usable(platform, "acme")
    assert 1 <= plugin.calls.count(("provisioned", "acme")) <= 2  # repeated only if its record was lost


async def test_a_failing_step_is_undone_and_leaves_nothing_behind(make_platform: MakePlatform, tmp_path: Path) -> None:
    platform, plugin = await host_with_items(make_platform, tmp_path)
    plugin.failing.add("provisioned")

    with pytest.raises(PluginCallError):
        await platform.tenants.provision("acme")

    with pytest.raises(TenantNotFoundError):
        await platform.tenants.get("acme")
    assert ("deleting", "acme") in plugin.calls  # plugins undo what their provisioned hooks set up
    assert not await platform.db.schema_exists("tenant_acme")
    assert await registry_rows(platform, "tenant_acme") == (0, 0, 0)
    plugin.failing.clear()
    await platform.tenants.provision("acme")
    await assert_usable(platform, "acme")


async def test_bad_slug_and_duplicate_are_refused_without_side_effects(
    make_platform: MakePlatform, tmp_path: Path
) -> None:
    platform, _ = await host_with_items(make_platform, tmp_path)
    with pytest.raises(InvalidTenantSlugError):
        await platform.tenants.provision("Bad_Slug")
    first = await platform.tenants.provision("acme")

    with pytest.raises(ConflictError):
        await platform.tenants.provision("acme")

    assert await platform.tenants.get("acme") == first
    assert [t.slug for t in await platform.tenants.list()] == ["acme"]


async def test_concurrent_resumes_of_one_tenant_let_exactly_one_win(
    make_platform: MakePlatform, tmp_path: Path
) -> None:
    platform, _ = await host_with_items(make_platform, tmp_path)

    async def crash(name: str) -> None:
        if name == "schema:recorded":
            raise Crash(name)

    platform.tenants.checkpoint = crash
    with pytest.raises(Crash):
        await platform.tenants.provision("acme")
    platform.tenants.checkpoint = None

    outcomes = await asyncio.gather(*(platform.tenants.provision("acme") for _ in range(2)), return_exceptions=True)

    assert sorted(type(o).__name__ for o in outcomes) in (["ConflictError", "TenantInfo"], ["TenantInfo", "_TakenOver"])
    await assert_usable(platform, "acme")


async def test_status_changes_bump_the_version_and_stale_writes_conflict(
    make_platform: MakePlatform, tmp_path: Path
) -> None:
    platform, _ = await host_with_items(make_platform, tmp_path)
    active = await platform.tenants.provision("acme")

    suspended = await platform.tenants.suspend("acme")
    resumed = await platform.tenants.resume("acme")

    assert (suspended.status, resumed.status) == ("suspended", "active")
    assert active.version < suspended.version < resumed.version
    with pytest.raises(ConflictError):
        async with platform.db.core_connection() as conn:
            await TenantRepository().set_status(conn, suspended, "deleting")
    assert (await platform.tenants.get("acme")).status == "active"


async def test_delete_drops_the_schema_only_after_the_hooks_ran(make_platform: MakePlatform, tmp_path: Path) -> None:
    platform, plugin = await host_with_items(make_platform, tmp_path)
    tenant = await platform.tenants.provision("acme")
    async with platform.db.tenant_connection(tenant.schema) as conn:
        await conn.execute(items.insert().values(id="1", code="a"))
    seen: list[int] = []

    async def export(_tenant: TenantContext, host: object) -> None:
        async with host.session() as session:  # type: ignore[attr-defined]
            seen.append(await session.scalar(sa.select(sa.func.count()).select_from(items)))

    plugin.on_deleting = export
    plugin.failing.add("deleting")
    with pytest.raises(PluginCallError):
        await platform.tenants.delete("acme")
    assert (await platform.tenants.get("acme")).status == "deleting"
    assert await platform.db.schema_exists(tenant.schema)

    plugin.failing.clear()
    deleted = await platform.tenants.delete("acme")

    assert deleted.status == "deleted" and seen == [1]  # the data was still there for the hook
    assert not await platform.db.schema_exists(tenant.schema)
    with pytest.raises(TenantNotFoundError):
        await platform.tenants.get("acme")
    assert await registry_rows(platform, tenant.schema) == (1, 1, 0)  # the row stays, marked deleted
