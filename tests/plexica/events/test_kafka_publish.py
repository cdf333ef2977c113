"""Concurrent ``KafkaEventBus.publish`` calls share record batches; none waits on another's fate."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path
from typing import Any

import pytest

from plexica.events import KafkaEventBus, KafkaOptions
from plexica.settings import EventSettings
from plexica_sdk import context
from plexica_sdk.errors import BackendUnavailableError
from plexica_sdk.types import Event, EventTypeDef, Subscription
from tests.plexica.events.conftest import FAST_CONSUMER, MakeBus, StaticDelivery, event_for, eventually, unique
from tests.plexica.events.outbox_support import own_tansu

pytestmark = [pytest.mark.anyio, pytest.mark.kafka]


@pytest.fixture
def backend() -> str:
    return "kafka"


async def test_concurrent_publishes_are_each_acknowledged_and_delivered_once(
    make_bus: MakeBus, delivery: StaticDelivery
) -> None:
    plugin = unique("p")
    tenant = delivery.add_tenant()
    handled: collections.Counter[str] = collections.Counter()

    async def handler(event: Event, host: Any) -> None:
        handled[event.id] += 1

    bus = make_bus(plugin_types={plugin: [EventTypeDef(type=f"{plugin}.order.placed")]})
    bus.subscribe(plugin, Subscription(event_type=f"{plugin}.order.placed", handler=handler))
    await bus.start()
    events = [event_for(plugin, tenant, "order.placed", subject=f"o-{i % 7}", data={"i": i}) for i in range(600)]
    with context.use(tenant):
        await asyncio.gather(*(bus.publish(event) for event in events))
    await eventually(lambda: len(handled) == len(events), what="600 deliveries")
    assert set(handled.values()) == {1}


async def test_a_cancelled_publish_does_not_hold_up_the_others(make_bus: MakeBus, delivery: StaticDelivery) -> None:
    plugin = unique("p")
    tenant = delivery.add_tenant()
    bus = make_bus(plugin_types={plugin: [EventTypeDef(type=f"{plugin}.order.placed")]})
    await bus.start()
    with context.use(tenant):
        await bus.publish(event_for(plugin, tenant, "order.placed"))  # the topic exists: no await before queueing
        tasks = [asyncio.create_task(bus.publish(event_for(plugin, tenant, "order.placed"))) for _ in range(300)]
    await asyncio.sleep(0)  # every task has queued its record
    for task in tasks[::10]:
        task.cancel()
    async with asyncio.timeout(10):
        results = await asyncio.gather(*tasks, return_exceptions=True)
    cancelled = [r for r in results if isinstance(r, asyncio.CancelledError)]
    assert len(cancelled) == 30
    assert [r for r in results if r is not None and not isinstance(r, asyncio.CancelledError)] == []


async def test_publishes_fail_promptly_while_the_broker_is_down_and_work_again_after(tmp_path: Path) -> None:
    delivery = StaticDelivery()
    tenant = delivery.add_tenant()
    plugin = unique("p")
    async with own_tansu(tmp_path) as broker:
        settings = EventSettings(
            backend="kafka",
            bootstrap_servers=broker.bootstrap,
            replication_factor=1,
            enable_idempotence=False,
        )
        bus = KafkaEventBus(settings, delivery, options=KafkaOptions(**FAST_CONSUMER, io_timeout_seconds=2.0))
        bus.registry.register(plugin, EventTypeDef(type=f"{plugin}.order.placed"))
        async with bus:
            with context.use(tenant):
                await bus.publish(event_for(plugin, tenant, "order.placed"))
                await broker.stop()
                started = asyncio.get_running_loop().time()
                results = await asyncio.gather(
                    *(bus.publish(event_for(plugin, tenant, "order.placed")) for _ in range(20)),
                    return_exceptions=True,
                )
                assert all(isinstance(r, BackendUnavailableError) for r in results), results
                assert asyncio.get_running_loop().time() - started < 8
                await broker.start()  # empty: the topic must be created again
                for _ in range(20):
                    try:
                        await bus.publish(event_for(plugin, tenant, "order.placed"))
                        break
                    except BackendUnavailableError:
                        await asyncio.sleep(0.5)
                else:
                    pytest.fail("publishing did not recover within 10 s")
