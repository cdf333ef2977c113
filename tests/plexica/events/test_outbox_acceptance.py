"""Acceptance of the outbox (events issue): a broker outage loses nothing; relays in several processes.

* Kafka: a Tansu broker of the test's own is killed while 1,000 events are published inside
  transactions, then started again; every event takes effect exactly once (duplicates, if any,
  are absorbed by ``Host.mark_processed``), in order per key. Runs on SQLite and PostgreSQL.
* PostgreSQL: two platforms on one database (two host processes) relay the same ``core.outbox``;
  no row goes out twice and every key's events go out in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from plexica.platform import Platform
from plexica.settings import Settings
from plexica_sdk import Host
from plexica_sdk.types import Event, TenantContext
from tests.plexica.db.support import database_url, fresh_postgres_database, make_platform_settings
from tests.plexica.events.conftest import FAST_CONSUMER, eventually
from tests.plexica.events.outbox_support import ShopPlugin, count_rows, effects_table, own_tansu

__all__ = ["database_url"]

pytestmark = pytest.mark.anyio

FAST_RELAY: dict[str, Any] = {"poll_seconds": 0.05}


def platform_settings(data_dir: Path, url: str | None, **events: Any) -> Settings:
    base = make_platform_settings(data_dir, url)
    outbox = attrs.evolve(base.events.outbox, **events.pop("outbox", {}))
    kafka = attrs.evolve(base.events.kafka, **events.pop("kafka", {}))
    return attrs.evolve(base, events=attrs.evolve(base.events, outbox=outbox, kafka=kafka, **events))


async def host_of(platform: Platform, slug: str, plugin: str = "shop") -> Host:
    tenant = await platform.tenants.provision(slug)
    return platform.host_for(plugin, TenantContext(tenant_id=tenant.id, slug=tenant.slug, schema=tenant.schema))


async def host_for_existing(platform: Platform, slug: str, plugin: str = "shop") -> Host:
    tenant = await platform.tenants.get(slug)
    return platform.host_for(plugin, TenantContext(tenant_id=tenant.id, slug=tenant.slug, schema=tenant.schema))


@pytest.mark.kafka
async def test_broker_killed_while_1000_events_are_published_in_transactions_loses_none(
    database_url: str | None, tmp_path: Path
) -> None:
    shop = ShopPlugin(tmp_path / "shop-migrations")
    async with own_tansu(tmp_path) as broker, contextlib.AsyncExitStack() as stack:
        settings = platform_settings(
            tmp_path / "data",
            database_url,
            backend="kafka",
            bootstrap_servers=broker.bootstrap,
            replication_factor=1,
            enable_idempotence=False,  # Tansu does not support aiokafka's idempotent producer
            retry_backoff_seconds=0.01,
            kafka={**FAST_CONSUMER, "io_timeout_seconds": 3.0},
            outbox=FAST_RELAY,
        )
        platform = await stack.enter_async_context(Platform(settings, plugins=[shop]))
        hosts = [await host_of(platform, slug) for slug in ("acme", "globex")]
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:  # provisioning created each tenant's topics up front
            assert {f"acme.{shop.event_type}", f"globex.{shop.event_type}"} <= set(await admin.list_topics())
        finally:
            await admin.close()
        published_before = platform.relay.published  # the core events of provisioning
        await broker.stop()

        events: list[Event] = []
        for batch in range(100):  # 100 transactions of 10 events, alternating tenants, 5 keys each
            host = hosts[batch % 2]
            async with host.session() as session:
                for i in range(10):
                    n = batch * 10 + i
                    key = f"{host.tenant.slug}-k{n % 5}"
                    events.append(
                        await host.publish(shop.event_type, {"n": n, "key": key}, subject=key, session=session)
                    )
        await asyncio.sleep(0.5)  # the relay tries, and fails, meanwhile
        assert not shop.received
        assert platform.relay.published == published_before

        await broker.start()
        await eventually(lambda: len(shop.handled) == 1000, timeout=45, what="1,000 events after the restart")

    assert set(shop.handled) == {event.id for event in events}
    assert set(shop.handled.values()) == {1}  # each took effect once, however often it arrived
    for key, seen in shop.order.items():
        assert seen == sorted(seen), f"events of {key} out of order"
    assert sum(shop.received.values()) >= 1000


@pytest.mark.postgres
async def test_two_relays_on_one_postgres_never_publish_a_row_twice_and_keep_per_key_order(
    postgres_url: str, tmp_path: Path
) -> None:
    published: list[tuple[str, Event]] = []  # (relay, event) in the order publish_many was called

    def recording(name: str, publish_many: Callable[..., Any]) -> Callable[..., Any]:
        async def record(events: Sequence[Event], **kwargs: Any) -> None:
            published.extend((name, event) for event in events if event.type == "shop.order.placed")
            await publish_many(events, **kwargs)

        return record

    async with fresh_postgres_database(postgres_url) as url, contextlib.AsyncExitStack() as stack:
        platforms = []
        for name in ("a", "b"):
            settings = platform_settings(tmp_path / name, url, outbox={**FAST_RELAY, "batch_size": 25})
            platform = await stack.enter_async_context(
                Platform(settings, plugins=[ShopPlugin(tmp_path / f"shop-{name}", subscribe=False)])
            )
            platform.bus.publish_many = recording(name, platform.bus.publish_many)  # type: ignore[method-assign]
            platforms.append(platform)
        a, b = platforms
        await host_of(a, "acme")
        await host_of(a, "globex")
        hosts = [await host_for_existing(p, slug) for p in platforms for slug in ("acme", "globex")]
        event_type = "shop.order.placed"

        async def writer(index: int) -> list[Event]:
            key, written = f"k{index}", []
            for n in range(30):  # one key's events, written in turn through both processes
                host = hosts[(n % 2) * 2 + index % 2]
                async with host.session() as session:
                    written.append(await host.publish(event_type, {"n": n, "key": key}, subject=key, session=session))
            return written

        written = [event for batch in await asyncio.gather(*(writer(i) for i in range(16))) for event in batch]
        await eventually(lambda: len(published) >= len(written), timeout=20, what="every row published")
        await asyncio.sleep(0.3)  # a second publication of some row would show now
        await a.relay.drain()
        await b.relay.drain()

    counts = Counter(event.id for _, event in published)
    assert set(counts) == {event.id for event in written}
    assert set(counts.values()) == {1}, "a row went out twice"
    by_key: dict[str, list[int]] = {}
    for _, event in published:
        by_key.setdefault(event.data["key"], []).append(event.data["n"])
    assert by_key == {f"k{i}": list(range(30)) for i in range(16)}
    relays = Counter(name for name, _ in published)
    assert relays["a"] > 0 and relays["b"] > 0, f"one relay did everything: {relays}"


@pytest.fixture
async def sqlite_platform(tmp_path: Path) -> AsyncIterator[tuple[Platform, ShopPlugin]]:
    shop = ShopPlugin(tmp_path / "shop-migrations")
    async with Platform(platform_settings(tmp_path / "data", None), plugins=[shop]) as platform:
        yield platform, shop


async def test_the_embedded_default_relays_through_sqlite_and_the_memory_bus(
    sqlite_platform: tuple[Platform, ShopPlugin],
) -> None:
    platform, shop = sqlite_platform
    assert platform.db.dialect == "sqlite" and platform.settings.events.backend == "memory"
    host = await host_of(platform, "acme")
    placed = [await shop.place(host, n, key=f"k{n % 3}") for n in range(30)]
    await eventually(lambda: len(shop.handled) == 30, timeout=10, what="30 events")
    assert set(shop.handled) == {event.id for event in placed}
    assert await count_rows(host, effects_table) == 30
    assert shop.order == {f"k{k}": [n for n in range(30) if n % 3 == k] for k in range(3)}
    assert uuid.UUID(placed[0].id)
