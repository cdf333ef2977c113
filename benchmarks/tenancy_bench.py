"""Tenant provisioning on PostgreSQL, schema DDL included, beside django-tenants itself, in paired rounds.

Each round provisions ``--per-round`` tenants through ``TenantService.provision`` (registry row,
schema with every table of the tenant base, ``notes`` and a benchmark ``inventory`` plugin,
default roles, hooks) one way, and as many through django-tenants (``Client(...).save()`` with
``auto_create_schema``) on its own fresh database of the same server, alternating sides each
round. django-tenants' tenant app gets as many tables as a Plexica tenant schema has (each with
an index), so both create schemas of the same size; it runs in a subprocess
(``benchmarks/_django_tenants.py``) since Django is synchronous.

* Plexica from a warm spare (the schema migrated ahead of time by the host, renamed into place;
  the spares are refilled between rounds, untimed) and from the template (the captured DDL
  replayed), each beside django-tenants' clone mode (``TENANT_CREATION_FAKES_MIGRATIONS``: the
  base schema cloned, migrations faked);
* Plexica replaying the migration chain with Alembic, beside django-tenants' default (``CREATE
  SCHEMA`` + ``migrate_schemas``).

The database starts with ``--schemas`` schemas (fillers: full tenant schemas without registry
rows), as a fleet's catalog would. With ``--fleet N``, also: one new plugin revision migrated
over N tenants (replayed, at concurrency 1 and 4, and with Alembic in every tenant), and a no-op
run. Targets from the tenancy issue: provisioning <= 40 ms at p50; one revision over 1,000
tenants <= 20 s; a no-op run over 1,000 tenants < 1 s.

Usage::

    set -a; . /tmp/plexica-services/env; set +a
    .venv/bin/python benchmarks/tenancy_bench.py [--url postgresql+asyncpg://...] [--rounds 7]
        [--per-round 5] [--schemas 50] [--fleet 0] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import sys
import tempfile
import textwrap
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import _paired
import attrs
from _paired import Figure, Measure, paired
from plexica_plugin_notes import NotesPlugin
from sqlalchemy import text
from tests.plexica.db.support import fresh_postgres_database

from plexica.db.fleet import FleetMigrator, FleetReport
from plexica.db.migrations import MigrationStream
from plexica.db.migrator import TenantMigrator
from plexica.db.templates import TemplateProvisioner
from plexica.platform import Platform
from plexica.settings import load_settings
from plexica_sdk import PluginManifest, hookimpl

BENCH = "tenancy"

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


async def tenant_tables(platform: Platform) -> int:
    """How many tables one provisioned tenant schema holds (the size django-tenants is given)."""
    tenant = await platform.tenants.provision(f"probe-{secrets.token_hex(3)}")
    async with platform.db.core_connection() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM information_schema.tables WHERE table_schema = :s"), {"s": tenant.schema}
        )
    return int(count or 0)


def plexica_side(platform: Platform, mode: str, n: int) -> Measure:
    """A round of ``n`` provisionings one way; seconds per tenant."""
    service = platform.tenants
    real = service.templates
    streams = platform.migrator.streams_for(platform.plugins.installable)

    async def measure() -> float:
        await real.refill(streams, n if mode == "spare" else 0)  # untimed, as a serving host does it ahead
        service.templates = ChainProvisioner(platform.migrator) if mode == "chain" else real  # type: ignore[assignment]
        try:
            started = time.perf_counter()
            for _ in range(n):
                await service.provision(f"{mode}-{secrets.token_hex(4)}")
            return (time.perf_counter() - started) / n
        finally:
            service.templates = real

    return measure


@contextlib.asynccontextmanager
async def django_tenants(url: str, tables: int, workdir: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """The django-tenants driver process, ready for ``<mode> <n>`` lines."""
    script = Path(__file__).with_name("_django_tenants.py")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        url,
        str(tables),
        str(workdir),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stdin is not None
    try:
        ready = await process.stdout.readline()
        if ready.strip() != b"ready":
            raise RuntimeError(f"django-tenants driver did not start (exit {await process.wait()})")
        yield process
    finally:
        process.stdin.close()
        await process.wait()


def django_side(process: asyncio.subprocess.Process, mode: str, n: int) -> Measure:
    async def measure() -> float:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(f"{mode} {n}\n".encode())
        await process.stdin.drain()
        timings: list[float] = json.loads(await process.stdout.readline())
        return sum(timings) / len(timings)

    return measure


async def fleet(url: str, data: Path, tenants: int) -> list[Figure]:
    """One new plugin revision over ``tenants`` tenants, three ways, and a no-op run after each."""
    v1, v2, v3, v4 = (write_inventory(data / f"inventory-v{n}", n) for n in (1, 2, 3, 4))
    figures = []
    async with fresh_postgres_database(url) as db_url:
        async with platform_for(db_url, data, v1) as platform:
            await provision_fleet(platform, tenants)
        runs = (("inv_0002", v2, 1, True), ("inv_0003", v3, 4, True), ("inv_0004", v4, 4, False))
        for label, migrations, concurrency, replayed in runs:
            async with platform_for(db_url, data, migrations) as upgraded:
                migrator = FleetMigrator(upgraded.db, upgraded.migrator)
                report = await migrator.run(concurrency=concurrency, replay=replayed)
                how = "replayed" if replayed else "Alembic per tenant"
                name = f"fleet: new revision {label} ({how}, concurrency {concurrency})"
                figures.append(fleet_figure(name, report, tenants))
                figures.append(fleet_figure("fleet: no-op run", await migrator.run(concurrency=concurrency), tenants))
    return figures


def fleet_figure(name: str, report: FleetReport, tenants: int) -> Figure:
    wall = report.wall_ms / 1000
    return Figure(BENCH, f"{name}, per tenant", wall / max(1, tenants), 1, note=f"{tenants} tenants in {wall:.2f} s")


async def provision_fleet(platform: Platform, count: int, concurrency: int = 4) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> None:
        async with gate:
            await platform.tenants.provision(f"fleet-{index:04d}")

    await asyncio.gather(*(one(index) for index in range(count)))


PAIRS = (
    ("spare", "provision from a warm spare (rename)", "clone", "django-tenants clone_schema"),
    ("template", "provision from the template (DDL replay)", "clone", "django-tenants clone_schema"),
    ("chain", "provision by the Alembic chain", "migrate", "django-tenants migrate_schemas"),
)


async def run(args: argparse.Namespace, data: Path) -> list[Figure]:
    rounds = _paired.rounds_for(args)
    per_round = min(args.per_round, 2) if args.quick else args.per_round
    figures = []
    inventory = write_inventory(data / "inventory-v1", 1)
    async with (
        fresh_postgres_database(args.url) as db_url,
        fresh_postgres_database(args.url) as django_url,
        platform_for(db_url, data, inventory) as platform,
    ):
        await add_fillers(platform, args.schemas - await schema_count(platform))
        tables = await tenant_tables(platform)
        async with django_tenants(django_url, tables, data / "django") as django:
            for mode, name, theirs, baseline_name in PAIRS:
                ours = plexica_side(platform, mode, per_round)
                figure = await paired(
                    BENCH, name, ours, baseline_name, django_side(django, theirs, per_round), rounds=rounds
                )
                schemas = await schema_count(platform)
                met = "ok" if figure.subject <= 0.040 else "MISSED"
                target = f"; target <= 40 ms: {met}" if mode != "chain" else ""
                figures.append(attrs.evolve(figure, note=f"{tables} tables, {schemas} schemas{target}"))
    if args.fleet:
        figures += await fleet(args.url, data, args.fleet)
    return figures


def main(argv: list[str]) -> int:
    parser = _paired.parser(__doc__)
    parser.add_argument("--url", default=os.environ.get("TEST_DATABASE_URL"), help="server URL (asyncpg)")
    parser.add_argument("--per-round", type=int, default=5, help="tenants provisioned per side per round")
    parser.add_argument("--schemas", type=int, default=50, help="schemas in the database before measuring")
    parser.add_argument("--fleet", type=int, default=0, help="also migrate a fleet of this many tenants")
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("give --url or set TEST_DATABASE_URL")
    with tempfile.TemporaryDirectory(prefix="plexica-bench-") as data:
        return _paired.finish(asyncio.run(run(args, Path(data))))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
