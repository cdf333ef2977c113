"""Fleet migration: the ledger's fast path, stop-and-resume on failure, canaries, status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from plexica.db.fleet import FleetMigrator, FleetReport
from plexica.db.ledger import read_ledger
from plexica.platform import Platform
from tests.plexica.db.support import ITEMS_REVISIONS, ItemsPlugin, MakePlatform, columns_of, write_migrations

pytestmark = pytest.mark.anyio

SLUGS = [f"fleet-{n:02d}" for n in range(1, 11)]
items = sa.Table("items", sa.MetaData(), sa.Column("id", sa.String(36)), sa.Column("code", sa.String(50)))


async def fleet_at_v1(make_platform: MakePlatform, tmp_path: Path, slugs: list[str] = SLUGS) -> Platform:
    """Tenants provisioned with the items plugin at its first revision."""
    v1 = await make_platform(ItemsPlugin(write_migrations(tmp_path / "items-v1", 1)))
    for slug in slugs:
        await v1.tenants.provision(slug)
    return v1


async def upgraded(
    make_platform: MakePlatform, tmp_path: Path, count: int = 2, **database: Any
) -> tuple[Platform, FleetMigrator]:
    """The same host after deploying the plugin with ``count`` revisions."""
    platform = await make_platform(ItemsPlugin(write_migrations(tmp_path / f"items-v{count}", count)), **database)
    return platform, FleetMigrator(platform.db, platform.migrator)


async def add_duplicate_codes(platform: Platform, slug: str) -> None:
    async with platform.db.tenant_connection((await platform.tenants.get(slug)).schema) as conn:
        await conn.execute(items.insert(), [{"id": "a", "code": "same"}, {"id": "b", "code": "same"}])


def outcomes(report: FleetReport) -> dict[str, str]:
    return {result.slug: result.outcome for result in report.results}


async def qty_columns(platform: Platform) -> dict[str, bool]:
    found = {}
    for slug in SLUGS:
        schema = (await platform.tenants.get(slug)).schema
        async with platform.db.tenant_connection(schema) as conn:
            found[slug] = "qty" in (await columns_of(conn, schema, "items") or set())
    return found


async def test_failing_tenant_is_rolled_back_and_a_rerun_completes_the_fleet(
    make_platform: MakePlatform, tmp_path: Path
) -> None:
    v1 = await fleet_at_v1(make_platform, tmp_path)
    await add_duplicate_codes(v1, SLUGS[2])  # the new unique index cannot be built in tenant 3
    platform, fleet = await upgraded(make_platform, tmp_path)

    report = await fleet.run(concurrency=1)

    assert outcomes(report) == {
        **dict.fromkeys(SLUGS[:2], "migrated"),
        SLUGS[2]: "failed",
        **dict.fromkeys(SLUGS[3:], "skipped"),
    }
    assert report.stopped and not report.ok
    failure = next(r for r in report.results if r.outcome == "failed")
    assert failure.error is not None and failure.error.startswith("plugin:items: ")
    assert "unique" in failure.error.lower()
    migrated = await qty_columns(platform)
    assert migrated == {slug: slug in SLUGS[:2] for slug in SLUGS}  # tenant 3's ADD COLUMN was rolled back
    states = {(s.slug, s.stream): s for s in await fleet.status()}
    assert states[SLUGS[0], "plugin:items"].state == "current"
    assert states[SLUGS[2], "plugin:items"].state == "failed"
    assert states[SLUGS[2], "plugin:items"].revision == "items_0001"
    assert "unique" in (states[SLUGS[2], "plugin:items"].error or "").lower()
    assert states[SLUGS[3], "plugin:items"].state == "pending"

    async with platform.db.tenant_connection((await platform.tenants.get(SLUGS[2])).schema) as conn:
        await conn.execute(items.delete().where(items.c.id == "b"))  # the operator fixes the data
    rerun = await fleet.run(concurrency=1)

    assert outcomes(rerun) == dict.fromkeys(SLUGS[2:], "migrated")  # tenants 1-2 skipped by the ledger
    assert rerun.counts()["up-to-date"] == 2 and rerun.ok
    assert all((await qty_columns(platform)).values())
    assert {s.state for s in await fleet.status()} == {"current"}


async def test_noop_run_skips_every_tenant_without_opening_its_schema(
    make_platform: MakePlatform, tmp_path: Path
) -> None:
    v1 = await fleet_at_v1(make_platform, tmp_path)
    fleet = FleetMigrator(v1.db, v1.migrator)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    try:
        report = await fleet.run(concurrency=4)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)

    assert report.results == () and report.ok
    assert report.counts() == {"up-to-date": len(SLUGS), "migrated": 0, "failed": 0, "skipped": 0}
    assert not [s for s in statements if "tenant_fleet" in s]


async def test_verify_ignores_the_ledger_and_repairs_it(make_platform: MakePlatform, tmp_path: Path) -> None:
    v1 = await fleet_at_v1(make_platform, tmp_path, SLUGS[:3])
    async with v1.db.core_connection() as conn:
        await conn.execute(sa.text("DELETE FROM core.migration_ledger WHERE stream = 'plugin:items'"))
    fleet = FleetMigrator(v1.db, v1.migrator)

    report = await fleet.run(verify=True)

    assert outcomes(report) == dict.fromkeys(SLUGS[:3], "up-to-date")  # nothing to do, but every schema checked
    async with v1.db.core_connection() as conn:
        ledger = await read_ledger(conn)
    assert all(
        ledger[f"tenant_{slug.replace('-', '_')}", "plugin:items"].revision == "items_0001" for slug in SLUGS[:3]
    )


async def test_canary_failure_stops_the_run_even_with_keep_going(make_platform: MakePlatform, tmp_path: Path) -> None:
    v1 = await fleet_at_v1(make_platform, tmp_path, SLUGS[:5])
    await add_duplicate_codes(v1, SLUGS[1])
    _, fleet = await upgraded(make_platform, tmp_path)

    report = await fleet.run(canary=2, keep_going=True, concurrency=2)

    assert outcomes(report) == {
        SLUGS[0]: "migrated",
        SLUGS[1]: "failed",
        **dict.fromkeys(SLUGS[2:5], "skipped"),
    }
    assert report.stopped


async def test_keep_going_migrates_every_tenant_but_the_failing_one(
    make_platform: MakePlatform, tmp_path: Path
) -> None:
    v1 = await fleet_at_v1(make_platform, tmp_path, SLUGS[:5])
    await add_duplicate_codes(v1, SLUGS[2])
    _, fleet = await upgraded(make_platform, tmp_path)

    report = await fleet.run(canary=1, keep_going=True, concurrency=3)

    assert outcomes(report) == {**dict.fromkeys(SLUGS[:5], "migrated"), SLUGS[2]: "failed"}
    assert not report.stopped and not report.ok


async def test_concurrency_is_capped_by_the_pool(make_platform: MakePlatform, tmp_path: Path) -> None:
    await fleet_at_v1(make_platform, tmp_path, SLUGS[:4])
    platform, fleet = await upgraded(make_platform, tmp_path, count=3, pool_size=2, max_overflow=0)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    try:
        report = await fleet.run(concurrency=50)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)

    assert outcomes(report) == dict.fromkeys(SLUGS[:4], "migrated")
    assert report.concurrency == (2 if platform.db.dialect == "postgresql" else 50)
    assert report.heads["plugin:items"] == "items_0003"
    alembic_reads = [s for s in statements if s.startswith("SELECT") and "tenant_fleet" in s]
    if platform.db.dialect == "postgresql":  # replayed: Alembic never opened a tenant's version table
        assert alembic_reads == []
    else:
        assert alembic_reads


async def test_a_stale_ledger_row_sends_the_tenant_through_alembic(make_platform: MakePlatform, tmp_path: Path) -> None:
    await fleet_at_v1(make_platform, tmp_path, SLUGS[:3])
    platform, fleet = await upgraded(make_platform, tmp_path, count=2)
    await fleet.run()
    async with platform.db.core_connection() as conn:  # the ledger lags one tenant (as after a crash)
        await conn.execute(
            sa.text(
                "UPDATE core.migration_ledger SET revision = 'items_0001' "
                "WHERE schema_name = :schema AND stream = 'plugin:items'"
            ),
            {"schema": "tenant_fleet_02"},
        )
    platform, fleet = await upgraded(make_platform, tmp_path, count=3)

    report = await fleet.run(concurrency=2)

    assert outcomes(report) == dict.fromkeys(SLUGS[:3], "migrated") and report.ok
    for slug in SLUGS[:3]:
        schema = f"tenant_{slug.replace('-', '_')}"
        async with platform.db.tenant_connection(schema) as conn:
            assert await columns_of(conn, schema, "item_tags") == {"item_id", "tag"}
    assert {s.state for s in await fleet.status()} == {"current"}


TAGGING = {
    "items_0001": ITEMS_REVISIONS["items_0001"],
    "items_0002": (
        "a data migration: one tag per existing item",
        """op.create_table(
    "item_tags",
    sa.Column("item_id", sa.String(36), primary_key=True),
    sa.Column("tag", sa.String(50), primary_key=True),
)
items = sa.table("items", sa.column("id"), schema=_schema())
tags = sa.table("item_tags", sa.column("item_id"), sa.column("tag"), schema=_schema())
for (item_id,) in op.get_bind().execute(sa.select(items.c.id)).all():
    op.get_bind().execute(tags.insert().values(item_id=item_id, tag="migrated"))""",
        'op.drop_table("item_tags")',
    ),
}


async def test_a_migration_that_reads_tenant_data_runs_per_tenant(make_platform: MakePlatform, tmp_path: Path) -> None:
    v1 = await fleet_at_v1(make_platform, tmp_path, SLUGS[:3])
    for number, slug in enumerate(SLUGS[:3]):
        async with v1.db.tenant_connection(f"tenant_{slug.replace('-', '_')}") as conn:
            for n in range(number):
                await conn.execute(items.insert().values(id=f"{slug}-{n}", code=f"c{n}"))
    platform = await make_platform(ItemsPlugin(write_migrations(tmp_path / "tagging", 2, TAGGING)))

    report = await FleetMigrator(platform.db, platform.migrator).run(concurrency=3)

    assert outcomes(report) == dict.fromkeys(SLUGS[:3], "migrated")
    tags = sa.Table("item_tags", sa.MetaData(), sa.Column("item_id", sa.String(36)))
    for number, slug in enumerate(SLUGS[:3]):
        async with platform.db.tenant_connection(f"tenant_{slug.replace('-', '_')}") as conn:
            tagged = set((await conn.execute(sa.select(tags.c.item_id))).scalars())
        assert tagged == {f"{slug}-{n}" for n in range(number)}  # each tenant's own rows, not a replay's
