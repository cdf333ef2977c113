"""Host metrics that read the database, on SQLite and PostgreSQL: statements, tenants, the outbox."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
import sqlalchemy as sa
from plexica_plugin_notes import NotesPlugin

from plexica.db.fleet import FleetMigrator, TenantResult
from plexica.events import MemoryEventBus
from plexica.platform import Platform
from plexica.tenancy.service import tenant_context_of
from plexica_sdk import PluginManifest, context, hookimpl
from plexica_sdk.types import Event, Principal, Subscription
from tests.plexica.db.support import MakePlatform

pytestmark = pytest.mark.anyio


async def _scrape(platform: Platform, name: str, labels: dict[str, str] | None = None) -> float | None:
    await platform.metrics.refresh()
    return platform.metrics.registry.get_sample_value(name, labels or {})


async def test_statements_are_timed_by_operation_and_table(make_platform: MakePlatform) -> None:
    platform = await make_platform()
    value = platform.metrics.registry.get_sample_value
    async with platform.db.core_connection() as conn:
        await conn.execute(sa.text("CREATE TABLE core.metrics_probe (x INTEGER)"))
        await conn.execute(sa.text("INSERT INTO core.metrics_probe (x) VALUES (1)"))
    for _ in range(3):
        async with platform.db.core_connection() as conn:
            await conn.execute(sa.text("SELECT x FROM core.metrics_probe"))
    assert value("db_query_duration_seconds_count", {"operation": "SELECT", "table": "metrics_probe"}) == 3
    assert value("db_query_duration_seconds_count", {"operation": "INSERT", "table": "metrics_probe"}) == 1
    assert (value("db_query_duration_seconds_sum", {"operation": "SELECT", "table": "metrics_probe"}) or 0) > 0
    await platform.tenants.list()  # the ORM's statements: schema-qualified, labelled by table alone
    assert (value("db_query_duration_seconds_count", {"operation": "SELECT", "table": "tenants"}) or 0) >= 1


async def test_active_tenants_follows_provision_suspend_resume_delete(make_platform: MakePlatform) -> None:
    platform = await make_platform()
    assert await _scrape(platform, "active_tenants") == 0
    await platform.tenants.provision("acme")
    await platform.tenants.provision("globex")
    assert await _scrape(platform, "active_tenants") == 2
    await platform.tenants.suspend("acme")
    assert await _scrape(platform, "active_tenants") == 1
    await platform.tenants.resume("acme")
    assert await _scrape(platform, "active_tenants") == 2
    await platform.tenants.delete("globex")
    assert await _scrape(platform, "active_tenants") == 1


async def test_outbox_events_count_when_relayed_and_a_rolled_back_write_counts_nothing(
    make_platform: MakePlatform,
) -> None:
    platform = await make_platform(NotesPlugin())
    ctx = tenant_context_of(await platform.tenants.provision("acme"))
    await platform.relay.drain()
    labels = {"event_type": "notes.note.created", "tenant_id": ctx.tenant_id}
    relayed_before = await _scrape(platform, "outbox_relayed_total") or 0

    class Abort(Exception):
        pass

    async def write_then_fail() -> None:
        async with platform.db.tenant_session(ctx.schema) as session:
            data = {"id": "n1", "title": "lost", "author_id": "alice"}
            await platform.publish("notes", "notes.note.created", data, ctx, session=session)
            raise Abort

    with pytest.raises(Abort):
        await write_then_fail()
    await platform.relay.drain()
    assert await _scrape(platform, "events_published_total", labels) is None

    async with platform.db.tenant_session(ctx.schema) as session:
        for number in range(3):
            data = {"id": f"n{number}", "title": "kept", "author_id": "alice"}
            await platform.publish("notes", "notes.note.created", data, ctx, session=session)
        # Written, committed only at the end of this block: nothing is counted before the relay sends it.
        assert await _scrape(platform, "events_published_total", labels) is None
    await platform.relay.drain()
    assert await _scrape(platform, "events_published_total", labels) == 3
    assert await _scrape(platform, "outbox_relayed_total") == relayed_before + 3
    platform.metrics.invalidate("outbox_lag")
    assert await _scrape(platform, "outbox_oldest_unsent_age_seconds") == 0


async def test_permission_cache_hits_and_misses_are_counted(make_platform: MakePlatform) -> None:
    platform = await make_platform(NotesPlugin())
    tenant = await platform.tenants.provision("acme")
    cache = platform.permissions.cache
    misses, hits = cache.misses, cache.hits
    alice = Principal(id="alice", tenant_slug="acme", username="alice", roles=("member",))
    await platform.permissions.authorize(tenant_context_of(tenant, user=alice), "notes:read")
    assert (cache.misses, cache.hits) == (misses + 1, hits)  # computed from the database, then stored
    raw = await cache.read("acme", "alice")
    assert raw is not None
    first, second = json.loads(raw)["stamp"]  # the entry's own stamp: what the next process would read
    assert cache.current(raw, (first, second)) is not None
    assert cache.current(raw, (first, second + 1)) is None  # a stale stamp is a miss
    assert await _scrape(platform, "permission_cache_misses_total") == misses + 2
    assert await _scrape(platform, "permission_cache_hits_total") == hits + 1


async def test_fleet_migration_progress(make_platform: MakePlatform) -> None:
    platform = await make_platform()
    for slug in ("acme", "globex", "initech"):
        await platform.tenants.provision(slug)
    metrics = platform.metrics
    seen: list[tuple[float | None, float | None]] = []

    def on_result(result: TenantResult) -> None:
        metrics.fleet_result(result)
        value = metrics.registry.get_sample_value
        seen.append((value("fleet_migration_tenants_done"), value("fleet_migration_tenants_total")))

    report = await FleetMigrator(platform.db, platform.migrator).run(
        verify=True, on_plan=metrics.fleet_planned, on_result=on_result
    )
    assert len(report.results) == 3 and report.ok
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert metrics.registry.get_sample_value("fleet_migration_tenants_failed") == 0


class FailingPlugin:
    """Subscribes to notes' events with a handler that always fails: every event is dead-lettered."""

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(name="failing", version="0.1.0")

    @hookimpl
    def plexica_subscriptions(self) -> Sequence[Subscription]:
        async def fail(event: Event, host: Any) -> None:
            raise RuntimeError("handler bug")

        return [Subscription(event_type="notes.note.created", handler=fail)]


async def test_dlq_size_per_plugin_follows_dead_letters_and_replays(make_platform: MakePlatform) -> None:
    platform = await make_platform(NotesPlugin(), FailingPlugin())
    ctx = tenant_context_of(await platform.tenants.provision("acme"))
    with context.use(ctx):
        for number in range(3):
            await platform.publish(
                "notes", "notes.note.created", {"id": f"n{number}", "title": "t", "author_id": "a"}, ctx
            )
    bus = platform.bus
    assert isinstance(bus, MemoryEventBus)
    await bus.join()
    assert await _scrape(platform, "dlq_size", {"plugin": "failing"}) == 3
    letters = await bus.dlq_list()
    await bus.dlq_dismiss(letters[0].id)
    platform.metrics.invalidate("dlq_size")
    assert await _scrape(platform, "dlq_size", {"plugin": "failing"}) == 2
    published = {"event_type": "notes.note.created", "tenant_id": ctx.tenant_id}
    assert await _scrape(platform, "events_published_total", published) == 3  # published directly: counted at once
