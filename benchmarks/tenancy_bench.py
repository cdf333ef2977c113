"""Tenant fleet on PostgreSQL: provisioning latency and fleet migrations, in one run.

Measures, on a fresh database (dropped at the end), with the tenant base plus two plugins
(``notes`` and a benchmark ``inventory`` plugin):

* provisioning latency p50/p95 for N = 1, 10 and 100 tenants, three ways: from a warm spare
  (rename), from the template (captured DDL replayed), and by replaying the migration chain with
  Alembic; once with ~50 schemas in the database and once with ~2,000;
* fleet migration wall time for 1,000 tenants, one new plugin revision, at concurrency 1 and 4
  (each transition replayed), and once more with Alembic run in every tenant;
* a no-op fleet run over the same 1,000 tenants.

Filler schemas (full tenant schemas without registry rows) are created in batches, replaying the
template in one script per batch, so the catalog grows as it would with real tenants.

Targets from the issue: provisioning p50 <= 40 ms and flat (within 1.5x) from 50 to 2,000
schemas; one revision over 1,000 tenants <= 20 s; no-op run over 1,000 tenants < 1 s.

Usage::

    set -a; . /tmp/plexica-services/env; set +a
    .venv/bin/python benchmarks/tenancy_bench.py [--url postgresql+asyncpg://...] [--tenants 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import statistics
import tempfile
import textwrap
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from plexica_plugin_notes import NotesPlugin
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from plexica.db.fleet import FleetMigrator, FleetReport
from plexica.db.migrations import MigrationStream
from plexica.db.migrator import TenantMigrator
from plexica.db.templates import TemplateProvisioner
from plexica.platform import Platform
from plexica.settings import load_settings
from plexica_sdk import PluginManifest, hookimpl

SIZES = (1, 10, 100)
FILLER_BATCH = 25

_REVISION = '''\
"""{doc}"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = {revision!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def _schema():
    return (op.get_bind().get_execution_options().get("schema_translate_map") or {{}}).get(None)


def upgrade():
{upgrade}


def downgrade():
    pass
'''

INVENTORY = [
    (
        "inv_0001",
        """op.create_table(
    "inventory_items",
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("sku", sa.String(64), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("qty", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
op.create_index("ix_inventory_items_sku", "inventory_items", ["sku"], unique=True, schema=_schema())""",
    ),
    (
        "inv_0002",
        """op.add_column("inventory_items", sa.Column("location", sa.String(100)), schema=_schema())
op.create_index("ix_inventory_items_location", "inventory_items", ["location"], schema=_schema())""",
    ),
    (
        "inv_0003",
        """op.add_column(
    "inventory_items", sa.Column("reorder_level", sa.Integer(), nullable=False, server_default="0"), schema=_schema()
)""",
    ),
    (
        "inv_0004",
        """op.add_column("inventory_items", sa.Column("notes", sa.Text()), schema=_schema())""",
    ),
]


def write_inventory(directory: Path, count: int) -> str:
    versions = directory / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    down = None
    for revision, body in INVENTORY[:count]:
        source = _REVISION.format(doc=revision, revision=revision, down=down, upgrade=textwrap.indent(body, "    "))
        (versions / f"{revision}.py").write_text(source, encoding="utf-8")
        down = revision
    return str(directory)


class InventoryPlugin:
    """The benchmark's second plugin: one table, then one new revision per fleet run."""

    def __init__(self, migrations: str) -> None:
        self.migrations = migrations

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(name="inventory", version="1.0.0", description="benchmark plugin")

    @hookimpl
    def plexica_tenant_migrations(self) -> str:
        return self.migrations


class ChainProvisioner:
    """Provisioning the slow way: create the schema, then run every stream's chain with Alembic."""

    def __init__(self, migrator: TenantMigrator) -> None:
        self.migrator = migrator

    async def provision(
        self, schema: str, streams: Sequence[MigrationStream], *, tenant_id: str | None
    ) -> dict[str, str | None]:
        await self.migrator.db.create_schema(schema)
        done = await self.migrator.migrate(schema, [(s, "head") for s in streams], tenant_id=tenant_id)
        return {name: move.after for name, move in done.items()}


@contextlib.asynccontextmanager
async def fresh_database(server_url: str) -> AsyncIterator[str]:
    name = f"plexica_bench_{secrets.token_hex(4)}"
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.dispose()


def platform_for(url: str, data_dir: Path, inventory: str) -> Platform:
    settings = load_settings(
        environ={},
        data_dir=str(data_dir),
        load_entry_points=False,
        environment="test",
        database={"url": url, "pool_size": 8, "max_overflow": 2},
    )
    return Platform(settings, plugins=[NotesPlugin(), InventoryPlugin(inventory)])


async def schema_count(platform: Platform) -> int:
    async with platform.db.core_connection() as conn:
        count = await conn.scalar(text("SELECT count(*) FROM pg_namespace WHERE nspname NOT LIKE 'pg_%'"))
    return int(count or 0)


async def add_fillers(platform: Platform, count: int) -> None:
    """``count`` full tenant schemas without registry rows: catalog weight, cheaply."""
    templates = TemplateProvisioner(platform.db)
    template = await templates.template(platform.migrator.streams_for(platform.plugins.installable))
    for start in range(0, count, FILLER_BATCH):
        async with platform.db.core_connection() as conn:
            for _ in range(min(FILLER_BATCH, count - start)):
                await templates.replay_into(conn, template, f"filler_{secrets.token_hex(6)}")


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def provision_batch(platform: Platform, prefix: str, n: int) -> list[float]:
    timings = []
    for index in range(n):
        started = time.perf_counter()
        await platform.tenants.provision(f"{prefix}-{index:03d}")
        timings.append((time.perf_counter() - started) * 1000)
    return timings


async def measure_provisioning(platform: Platform, phase: str, rows: list[list[str]]) -> int:
    """Provision N = 1, 10, 100 tenants each way; returns how many tenants were created."""
    service = platform.tenants
    streams = platform.migrator.streams_for(platform.plugins.installable)
    real = service.templates
    schemas = await schema_count(platform)
    created = 0
    for mode in ("spare", "template", "chain"):
        for n in SIZES:
            if mode == "spare":
                await real.refill(streams, n)
            else:
                await real.refill(streams, 0)
            service.templates = ChainProvisioner(platform.migrator) if mode == "chain" else real  # type: ignore[assignment]
            timings = await provision_batch(platform, f"{phase}-{mode}-{n}", n)
            service.templates = real
            created += n
            rows.append(
                [
                    phase,
                    str(schemas),
                    mode,
                    str(n),
                    f"{statistics.median(timings):.1f}",
                    f"{percentile(timings, 0.95):.1f}",
                ]
            )
    return created


async def provision_fleet(platform: Platform, count: int, concurrency: int = 4) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> None:
        async with gate:
            await platform.tenants.provision(f"fleet-{index:04d}")

    await asyncio.gather(*(one(index) for index in range(count)))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = [" | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("-|-".join("-" * w for w in widths))
    lines.extend(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(lines)


def fleet_row(label: str, report: FleetReport, tenants: int) -> list[str]:
    counts = report.counts()
    per_tenant = report.wall_ms / max(1, tenants)
    return [
        label,
        str(tenants),
        str(report.concurrency),
        str(counts["migrated"]),
        f"{report.wall_ms / 1000:.2f}",
        f"{per_tenant:.2f}",
    ]


async def main(url: str, tenants: int, big: int, small: int, data: Path) -> None:
    v1, v2, v3, v4 = (write_inventory(data / f"inventory-v{n}", n) for n in (1, 2, 3, 4))
    started = time.perf_counter()
    provisioning: list[list[str]] = []
    fleet_rows: list[list[str]] = []
    async with fresh_database(url) as db_url:
        async with platform_for(db_url, data, v1) as platform:
            await add_fillers(platform, small - await schema_count(platform))
            created = await measure_provisioning(platform, "small", provisioning)
            await provision_fleet(platform, max(0, tenants - 2 * created))
            await add_fillers(platform, big - await schema_count(platform))
            await measure_provisioning(platform, "large", provisioning)
            total = len(await platform.tenants.list())
            schemas = await schema_count(platform)
        print(
            f"setup and provisioning done in {time.perf_counter() - started:.0f} s: {total} tenants, {schemas} schemas"
        )
        runs = (("inv_0002", v2, 1, True), ("inv_0003", v3, 4, True), ("inv_0004", v4, 4, False))
        for label, migrations, concurrency, replayed in runs:
            async with platform_for(db_url, data, migrations) as upgraded:
                fleet = FleetMigrator(upgraded.db, upgraded.migrator)
                report = await fleet.run(concurrency=concurrency, replay=replayed)
                how = "replayed" if replayed else "Alembic per tenant"
                fleet_rows.append(fleet_row(f"one new revision ({label}, {how})", report, total))
                noop = await fleet.run(concurrency=concurrency)
                fleet_rows.append(fleet_row("no-op run", noop, total))

    print()
    print("Provisioning latency, ms (spare: rename a warm spare; template: replay captured DDL; chain: Alembic)")
    print(table(["fleet", "schemas", "mode", "N", "p50", "p95"], provisioning))
    print()
    print("Fleet migration")
    print(table(["run", "tenants", "concurrency", "migrated", "wall s", "ms/tenant"], fleet_rows))
    print(f"\ntotal benchmark time {time.perf_counter() - started:.0f} s")


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("TEST_DATABASE_URL"), help="server URL (asyncpg)")
    parser.add_argument("--tenants", type=int, default=1000, help="tenants in the fleet")
    parser.add_argument("--schemas", type=int, default=2000, help="schemas for the large measurement")
    parser.add_argument("--small", type=int, default=50, help="schemas for the small measurement")
    args = parser.parse_args()
    if not args.url:
        parser.error("give --url or set TEST_DATABASE_URL")
    data = Path(tempfile.mkdtemp(prefix="plexica-bench-"))
    try:
        asyncio.run(main(args.url, args.tenants, args.schemas, args.small, data))
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    run()
