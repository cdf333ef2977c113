"""Consumer lag on a real Kafka-protocol broker: committed offset against the highwater, per plugin."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from plexica.events import KafkaEventBus
from plexica.observability.metrics import Metrics
from plexica_sdk.types import Event, EventTypeDef, Subscription
from tests.plexica.events.conftest import MakeBus, StaticDelivery, event_for, eventually, unique

pytestmark = [pytest.mark.anyio, pytest.mark.kafka]


@pytest.fixture
def backend() -> str:
    return "kafka"


async def test_lag_counts_the_records_waiting_behind_a_slow_handler(
    make_bus: MakeBus, delivery: StaticDelivery
) -> None:
    plugin = unique("lag")
    tenant = delivery.add_tenant()
    bus = cast(
        KafkaEventBus, make_bus(plugin_types={plugin: [EventTypeDef(type=f"{plugin}.job.queued")]}, partitions=1)
    )
    gate = asyncio.Event()
    gate.set()
    handled: list[str] = []

    async def handler(event: Event, host: Any) -> None:
        await gate.wait()
        handled.append(event.id)

    bus.subscribe(plugin, Subscription(event_type=f"{plugin}.job.queued", handler=handler))
    await bus.start()
    metrics = Metrics()

    async def lag() -> float | None:
        for name, value in (await bus.consumer_lag()).items():
            metrics.consumer_lag.labels(name).set(value)
        return metrics.registry.get_sample_value("events_consumer_lag", {"plugin": plugin})

    def job(number: int) -> Event:
        return event_for(plugin, tenant, "job.queued", subject="one-key", data={"n": number})

    await bus.publish(job(0))
    await eventually(lambda: len(handled) == 1, what="the first job")
    await eventually(lambda: bus.assignment(plugin) != frozenset(), what="an assignment")
    gate.clear()
    await bus.publish_many([job(n) for n in range(1, 6)])
    deadline = asyncio.get_running_loop().time() + 20
    while await lag() != 5:  # the consumer fetched them (highwater 6); offset 1 is the committed one
        assert asyncio.get_running_loop().time() < deadline, f"lag stayed {await lag()}"
        await asyncio.sleep(0.05)
    gate.set()
    await eventually(lambda: len(handled) == 6, what="all jobs")
    deadline = asyncio.get_running_loop().time() + 20
    while await lag() != 0:
        assert asyncio.get_running_loop().time() < deadline, f"lag stayed {await lag()}"
        await asyncio.sleep(0.05)
