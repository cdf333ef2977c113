"""The transactional outbox and the idempotency helper, on SQLite (the embedded default) and PostgreSQL.

Each test runs a whole platform with the in-process bus; ``database_url`` gives it SQLite files or
a fresh PostgreSQL database. What only PostgreSQL does (several relays on one outbox) and the
broker outage on Kafka are in ``test_outbox_acceptance.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from plexica.events.models import core_outbox, processed_events, tenant_outbox
from plexica.events.outbox import from_envelope, to_envelope
from plexica.platform import Platform
from plexica_sdk import EventError, Host
from plexica_sdk.types import Event, TenantContext
from tests.plexica.db.support import MakePlatform, database_url, make_platform
from tests.plexica.events.conftest import eventually
from tests.plexica.events.outbox_support import ShopPlugin, count_rows, effects_table, orders_table

__all__ = ["database_url", "make_platform"]

pytestmark = pytest.mark.anyio


async def shop_platform(make_platform: MakePlatform, tmp_path: Path, **shop: object) -> tuple[Platform, ShopPlugin]:
    plugin = ShopPlugin(tmp_path / "shop-migrations", **shop)  # type: ignore[arg-type]
    platform = await make_platform(plugin)
    return platform, plugin


async def tenant_host(platform: Platform, slug: str, plugin: str = "shop") -> Host:
    tenant = await platform.tenants.provision(slug)
    await platform.relay.drain()  # core.tenant.created went through the outbox too: out of the way
    ctx = TenantContext(tenant_id=tenant.id, slug=tenant.slug, schema=tenant.schema)
    return platform.host_for(plugin, ctx)


async def pending(platform: Platform, host: Host) -> int:
    """Unsent outbox rows of the host's tenant, wherever this database keeps them."""
    if platform.db.dialect == "postgresql":
        async with platform.db.core_connection() as conn:
            query = sa.select(sa.func.count()).select_from(core_outbox)
            where = sa.and_(core_outbox.c.tenant_id == host.tenant.tenant_id, core_outbox.c.sent_at.is_(None))
            return int(await conn.scalar(query.where(where)) or 0)
    return await count_rows(host, tenant_outbox, tenant_outbox.c.sent_at.is_(None))


async def test_an_event_published_in_a_transaction_goes_out_after_the_commit_with_its_id(
    make_platform: MakePlatform, tmp_path: Path
) -> None:
    platform, shop = await shop_platform(make_platform, tmp_path)
    host = await tenant_host(platform, "acme")
    async with host.session() as session:
        await session.execute(orders_table.insert().values(id="o-1", n=1))
        event = await host.publish(shop.event_type, {"n": 1}, subject="o-1", session=session)
        await asyncio.sleep(0.05)
        assert not shop.received  # nothing leaves before the commit
    await platform.relay.drain()
    await eventually(lambda: shop.handled[event.id] == 1, timeout=5, what="the handler")
    assert await count_rows(host, effects_table) == 1
    assert await pending(platform, host) == 0


async def test_a_rolled_back_transaction_publishes_nothing(make_platform: MakePlatform, tmp_path: Path) -> None:
    platform, shop = await shop_platform(make_platform, tmp_path)
    host = await tenant_host(platform, "acme")
    with pytest.raises(RuntimeError, match="failed after publishing"):
        await shop.place(host, 1, key="o-1", fail=True)
    await platform.relay.drain()
    await asyncio.sleep(0.1)
    assert not shop.received
    assert await count_rows(host, orders_table) == 0
    assert await pending(platform, host) == 0


async def test_an_event_published_in_a_rolled_back_savepoint_is_dropped_with_it(
    make_platform: MakePlatform, tmp_path: Path
) -> None:
    platform, shop = await shop_platform(make_platform, tmp_path)
    host = await tenant_host(platform, "acme")
    async with host.session() as session:
        kept = await host.publish(shop.event_type, {"n": 1}, subject="k", session=session)
        savepoint = await session.begin_nested()
        await host.publish(shop.event_type, {"n": 2}, subject="k", session=session)
        await savepoint.rollback()
        async with session.begin_nested():
            released = await host.publish(shop.event_type, {"n": 3}, subject="k", session=session)
        after = await host.publish(shop.event_type, {"n": 4}, subject="k", session=session)
    await eventually(lambda: len(shop.handled) == 3, timeout=5, what="three events")
    await platform.relay.drain()
    assert set(shop.handled) == {kept.id, released.id, after.id}
    assert shop.order == {"": [1, 3, 4]}


@pytest.mark.parametrize(
    ("event_type", "data", "message"),
    [
        ("shop.order.refunded", {"n": 1}, "unknown event type"),
        ("shop.order.placed", {"n": "one"}, "fails its schema"),
        ("core.tenant.created", {"n": 1}, "may not publish"),
    ],
    ids=["unknown-type", "bad-payload", "another-plugins-type"],
)
async def test_a_bad_event_fails_at_publish_time_and_writes_nothing(
    make_platform: MakePlatform, tmp_path: Path, event_type: str, data: object, message: str
) -> None:
    platform, _ = await shop_platform(make_platform, tmp_path)
    host = await tenant_host(platform, "acme")
    async with host.session() as session:
        with pytest.raises(EventError, match=message):
            await host.publish(event_type, data, session=session)
    assert await pending(platform, host) == 0


async def test_a_session_of_another_tenant_is_refused(make_platform: MakePlatform, tmp_path: Path) -> None:
    platform, shop = await shop_platform(make_platform, tmp_path)
    acme, globex = await tenant_host(platform, "acme"), await tenant_host(platform, "globex")
    async with globex.session() as session:
        with pytest.raises(EventError, match="not bound to tenant 'acme'"):
            await acme.publish(shop.event_type, {"n": 1}, session=session)
        with pytest.raises(EventError, match="AsyncSession"):
            await acme.publish(shop.event_type, {"n": 1}, session=object())


async def test_rows_written_while_no_relay_runs_go_out_when_one_starts(
    make_platform: MakePlatform, tmp_path: Path
) -> None:
    platform, shop = await shop_platform(make_platform, tmp_path)
    host = await tenant_host(platform, "acme")
    await platform.relay.__aexit__(None, None, None)  # as if this process died before relaying
    events = [await shop.place(host, n, key="k") for n in range(5)]
    assert await pending(platform, host) == 5
    shop2 = ShopPlugin(tmp_path / "shop-migrations")
    second = await make_platform(shop2)  # a new process on the same database sweeps at start
    await second.relay.drain()
    await eventually(lambda: len(shop2.handled) == 5, timeout=5, what="the second host's handler")
    assert set(shop2.received) == {event.id for event in events}
    assert shop2.order == {"k": [0, 1, 2, 3, 4]}


async def test_many_events_keep_their_order_per_key(make_platform: MakePlatform, tmp_path: Path) -> None:
    platform, shop = await shop_platform(make_platform, tmp_path)
    host = await tenant_host(platform, "acme")

    async def writer(key: str) -> None:
        for n in range(20):
            await shop.place(host, n, key=key)

    await asyncio.gather(*(writer(f"k{i}") for i in range(5)))
    await platform.relay.drain()
    await eventually(lambda: len(shop.handled) == 100, timeout=10, what="100 deliveries")
    assert shop.order == {f"k{i}": list(range(20)) for i in range(5)}


async def test_mark_processed_is_true_once_per_plugin_and_event_and_rolls_back_with_the_handler(
    make_platform: MakePlatform, tmp_path: Path
) -> None:
    platform, shop = await shop_platform(make_platform, tmp_path, subscribe=False)
    host = await tenant_host(platform, "acme")
    other = platform.host_for("core", host.tenant)
    event = Event(type=shop.event_type, source="/plugins/shop", tenantid=host.tenant.tenant_id)

    async def failing_handler() -> None:
        async with host.session() as session:
            assert await host.mark_processed(event, session=session)
            raise RuntimeError("the handler failed")

    with pytest.raises(RuntimeError):
        await failing_handler()
    async with host.session() as session:
        assert await host.mark_processed(event, session=session)  # the failed attempt left no trace
        assert not await host.mark_processed(event, session=session)
    async with host.session() as session:
        assert not await host.mark_processed(event, session=session)
        assert await other.mark_processed(event, session=session)  # each plugin has its own record
    assert await count_rows(host, processed_events) == 2


async def test_sent_rows_and_old_processed_ids_are_pruned(make_platform: MakePlatform, tmp_path: Path) -> None:
    platform, shop = await shop_platform(make_platform, tmp_path)
    host = await tenant_host(platform, "acme")
    await shop.place(host, 1, key="k")
    await platform.relay.drain()
    await eventually(lambda: len(shop.handled) == 1, timeout=5, what="the handler")
    store = platform.outbox.store
    future = dt.datetime(2999, 1, 1, tzinfo=dt.UTC)
    assert await store.prune_outbox(future) == 2  # the shop's event and core.tenant.created
    assert await store.prune_processed(future) == 1
    assert await count_rows(host, processed_events) == 0


def test_the_stored_envelope_gives_back_the_same_event() -> None:
    event = Event(
        type="shop.order.placed",
        source="/plugins/shop",
        data={"n": 1, "text": "é"},
        subject="o-1",
        tenantid="t",
        workspaceid="w",
        userid="u",
        traceid="tr",
        schemaversion=2,
    )
    assert from_envelope(to_envelope(event)) == event


def test_data_that_is_not_json_cannot_be_stored() -> None:
    with pytest.raises(EventError, match="cannot be encoded"):
        to_envelope(Event(type="shop.order.placed", source="/plugins/shop", data={"n": float("nan")}))
