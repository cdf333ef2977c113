"""Per-tenant plugin installs: install (up to a revision), upgrade, uninstall, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from plexica.db.fleet import FleetMigrator
from plexica.db.ledger import read_ledger
from plexica.platform import Platform
from plexica_sdk.errors import ConflictError, NotFoundError, PluginCallError, ValidationError
from tests.plexica.db.support import ItemsPlugin, MakePlatform, columns_of, write_migrations

pytestmark = pytest.mark.anyio

items = sa.Table("items", sa.MetaData(), sa.Column("id", sa.String(36)), sa.Column("code", sa.String(50)))


async def tenants_then_plugin(make_platform: MakePlatform, tmp_path: Path) -> tuple[Platform, ItemsPlugin]:
    """acme and globex exist before the items plugin (three revisions) is deployed."""
    before = await make_platform()
    for slug in ("acme", "globex"):
        await before.tenants.provision(slug)
    plugin = ItemsPlugin(write_migrations(tmp_path / "items", 3))
    return await make_platform(plugin), plugin


async def tables(platform: Platform, slug: str) -> dict[str, set[str] | None]:
    schema = (await platform.tenants.get(slug)).schema
    async with platform.db.tenant_connection(schema) as conn:
        return {name: await columns_of(conn, schema, name) for name in ("items", "item_tags", "alembic_version_items")}


async def ledger_revision(platform: Platform, slug: str) -> str | None:
    schema = (await platform.tenants.get(slug)).schema
    async with platform.db.core_connection() as conn:
        entry = (await read_ledger(conn, [schema])).get((schema, "plugin:items"))
    return entry.revision if entry else "(no row)"


async def test_two_tenants_run_different_revisions_of_a_plugin(make_platform: MakePlatform, tmp_path: Path) -> None:
    platform, plugin = await tenants_then_plugin(make_platform, tmp_path)

    pinned = await platform.tenants.install_plugin("acme", "items", revision="items_0001")
    latest = await platform.tenants.install_plugin("globex", "items")

    assert (pinned.before, pinned.after, latest.after) == (None, "items_0001", "items_0003")
    acme, globex = await tables(platform, "acme"), await tables(platform, "globex")
    assert acme["items"] == {"id", "code", "note"} and acme["item_tags"] is None
    assert globex["items"] == {"id", "code", "note", "qty"} and globex["item_tags"] is not None
    assert plugin.calls == [("installed", "acme"), ("installed", "globex")]

    fleet = FleetMigrator(platform.db, platform.migrator)
    assert (await fleet.run()).results == ()  # the pin holds: nothing is pending
    states = {s.slug: s for s in await fleet.status() if s.stream == "plugin:items"}
    assert (states["acme"].revision, states["acme"].target, states["acme"].state) == (
        "items_0001",
        "items_0001",
        "current",
    )

    step = await platform.tenants.upgrade_plugin("acme", "items", revision="items_0002")
    head = await platform.tenants.upgrade_plugin("acme", "items")

    assert (step.before, step.after, head.after) == ("items_0001", "items_0002", "items_0003")
    assert await tables(platform, "acme") == await tables(platform, "globex")
    assert plugin.calls[-1] == ("upgraded:1.0.0->1.0.0", "acme")
    assert await ledger_revision(platform, "acme") == "items_0003"
    with pytest.raises(ValidationError, match="never go back"):
        await platform.tenants.upgrade_plugin("acme", "items", revision="items_0001")


async def test_uninstall_runs_the_hook_first_and_drops_tables_unless_kept(
    make_platform: MakePlatform, tmp_path: Path
) -> None:
    platform, plugin = await tenants_then_plugin(make_platform, tmp_path)
    for slug in ("acme", "globex"):
        await platform.tenants.install_plugin(slug, "items")
        async with platform.db.tenant_connection((await platform.tenants.get(slug)).schema) as conn:
            await conn.execute(items.insert().values(id="1", code=slug))

    plugin.failing.add("uninstalled")
    with pytest.raises(PluginCallError):
        await platform.tenants.uninstall_plugin("globex", "items")
    assert (await tables(platform, "globex"))["items"] is not None  # a failing hook stops it before the drop
    plugin.failing.clear()

    kept = await platform.tenants.uninstall_plugin("acme", "items", keep_data=True)
    dropped = await platform.tenants.uninstall_plugin("globex", "items")

    assert (kept.after, dropped.after) == ("items_0003", None)
    assert (await tables(platform, "acme"))["items"] is not None
    assert await tables(platform, "globex") == {"items": None, "item_tags": None, "alembic_version_items": None}
    assert await ledger_revision(platform, "globex") == "(no row)"
    assert await platform.tenants.installed_plugins(await platform.tenants.get("acme")) == {
        "items": ("1.0.0", "uninstalled")
    }
    assert await platform.tenants.installed_plugins(await platform.tenants.get("globex")) == {}
    assert (await FleetMigrator(platform.db, platform.migrator).run()).results == ()

    again = await platform.tenants.install_plugin("acme", "items")  # the kept data is found again
    assert (again.before, again.after) == ("items_0003", "items_0003")
    async with platform.db.tenant_connection((await platform.tenants.get("acme")).schema) as conn:
        assert await conn.scalar(sa.select(items.c.code)) == "acme"


async def test_bad_plugin_input_is_refused_without_changes(make_platform: MakePlatform, tmp_path: Path) -> None:
    platform, plugin = await tenants_then_plugin(make_platform, tmp_path)

    with pytest.raises(ValidationError, match="unknown plugin 'nope'"):
        await platform.tenants.install_plugin("acme", "nope")
    with pytest.raises(ValidationError, match="no revision 'items_9999'"):
        await platform.tenants.install_plugin("acme", "items", revision="items_9999")
    with pytest.raises(NotFoundError):
        await platform.tenants.upgrade_plugin("acme", "items")
    assert (await tables(platform, "acme"))["items"] is None
    assert plugin.calls == []

    await platform.tenants.install_plugin("acme", "items")
    with pytest.raises(ConflictError):
        await platform.tenants.install_plugin("acme", "items")


async def test_a_failing_install_hook_undoes_the_migrations(make_platform: MakePlatform, tmp_path: Path) -> None:
    platform, plugin = await tenants_then_plugin(make_platform, tmp_path)
    plugin.failing.add("installed")

    with pytest.raises(PluginCallError):
        await platform.tenants.install_plugin("acme", "items")

    assert await tables(platform, "acme") == {"items": None, "item_tags": None, "alembic_version_items": None}
    assert await platform.tenants.installed_plugins(await platform.tenants.get("acme")) == {}
    assert await ledger_revision(platform, "acme") == "(no row)"
