"""What only the Kafka bus does: group partition splitting, raw-record checks, broker-side failures."""

from __future__ import annotations

import asyncio
import collections
import json
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from plexica.events import KafkaEventBus, KafkaOptions, encode
from plexica.settings import EventSettings
from plexica_sdk import context
from plexica_sdk.errors import BackendUnavailableError
from plexica_sdk.types import Event, EventTypeDef, Subscription
from tests.plexica.events.conftest import MakeBus, StaticDelivery, event_for, eventually, unique

pytestmark = [pytest.mark.anyio, pytest.mark.kafka]


@pytest.fixture
def backend() -> str:
    return "kafka"


def types_of(plugin: str) -> dict[str, list[EventTypeDef]]:
    return {plugin: [EventTypeDef(type=f"{plugin}.order.placed")]}


async def test_two_consumers_in_one_group_split_partitions_and_handle_each_event_once(
    make_bus: MakeBus, delivery: StaticDelivery
) -> None:
    plugin = unique("p")
    tenant = delivery.add_tenant()
    handled: collections.Counter[str] = collections.Counter()
    by_bus: collections.Counter[str] = collections.Counter()
    buses = [cast(KafkaEventBus, make_bus(plugin_types=types_of(plugin), partitions=4)) for _ in range(2)]
    for name, bus in zip("ab", buses, strict=True):

        async def handler(event: Event, host: Any, name: str = name) -> None:
            handled[event.id] += 1
            by_bus[name] += 1

        bus.subscribe(plugin, Subscription(event_type=f"{plugin}.order.placed", handler=handler))
    await buses[0].start()
    await buses[0].ensure_topics([buses[0].topics.topic_for(f"{plugin}.order.placed", tenant.slug)])
    await buses[1].start()

    def split() -> bool:
        a, b = (bus.assignment(plugin) for bus in buses)
        return bool(a) and bool(b) and not a & b and len(a | b) == 4

    await eventually(split, what="both consumers own partitions")
    events = [event_for(plugin, tenant, "order.placed", subject=f"order-{i}", data={"i": i}) for i in range(80)]
    await buses[0].publish_many(events)
    await eventually(lambda: sum(handled.values()) >= len(events))
    await asyncio.sleep(0.3)  # a duplicate would show up now

    assert handled == {event.id: 1 for event in events}
    assert by_bus["a"] > 0 and by_bus["b"] > 0


async def test_event_whose_envelope_tenant_differs_from_its_topic_is_dropped(
    make_bus: MakeBus, delivery: StaticDelivery, kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    plugin = unique("p")
    acme, globex = delivery.add_tenant(), delivery.add_tenant()
    seen: list[Event] = []

    async def handler(event: Event, host: Any) -> None:
        seen.append(event)

    bus = make_bus(plugin_types=types_of(plugin))
    bus.subscribe(plugin, Subscription(event_type=f"{plugin}.order.placed", handler=handler))
    await bus.start()
    topic = bus.topics.topic_for(f"{plugin}.order.placed", acme.slug)
    forged = event_for(plugin, globex, "order.placed")  # globex's event on acme's topic
    value, headers = encode(forged)
    async with AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=False) as producer:
        await cast(KafkaEventBus, bus).ensure_topics([topic])
        await producer.send_and_wait(topic, value, key=b"k", headers=headers)
        await producer.send_and_wait(topic, b"{not json", key=b"k", headers=[("ce_id", b"x")])
    genuine = event_for(plugin, acme, "order.placed")
    await bus.publish(genuine, key="k")  # same partition, so it comes after the two bad records

    await eventually(lambda: len(seen) == 1)
    assert seen == [genuine]
    assert "does not belong to its tenant" in caplog.text
    assert "skipped record" in caplog.text


async def test_delivery_failure_is_not_committed_and_the_event_comes_again(
    make_bus: MakeBus, delivery: StaticDelivery
) -> None:
    plugin = unique("p")
    tenant = delivery.add_tenant()
    seen: list[Event] = []

    async def handler(event: Event, host: Any) -> None:
        seen.append(event)

    bus = make_bus(plugin_types=types_of(plugin))
    bus.subscribe(plugin, Subscription(event_type=f"{plugin}.order.placed", handler=handler))
    await bus.start()
    event = event_for(plugin, tenant, "order.placed")
    delivery.fail_once.add(event.id)
    with context.use(tenant):  # the publish itself needs no lookup
        await bus.publish(event)

    await eventually(lambda: len(seen) == 1)
    assert seen == [event]
    assert not delivery.fail_once


async def test_dead_letter_record_carries_the_original_record_and_why_it_failed(
    make_bus: MakeBus, delivery: StaticDelivery, kafka_bootstrap: str
) -> None:
    plugin = unique("p")
    tenant = delivery.add_tenant()

    async def broken(event: Event, host: Any) -> None:
        raise KeyError("sku")

    bus = make_bus(plugin_types=types_of(plugin))
    bus.subscribe(
        plugin, Subscription(event_type=f"{plugin}.order.placed", handler=broken, name="ship", max_attempts=2)
    )
    await bus.start()
    event = event_for(plugin, tenant, "order.placed", data={"sku": "A-1"}, subject="o-1")
    await bus.publish(event)

    letters: list[Any] = []

    async def dead() -> None:
        while not letters:
            letters.extend(await bus.dlq_list())
            await asyncio.sleep(0.05)

    async with asyncio.timeout(20):
        await dead()
    [letter] = letters
    # Subscribed without a group: every partition, from the start (a group-less consumer's metadata
    # may not list a topic it does not track on Apache Kafka, so ``assign`` would find none).
    dlq = bus.topics.dead_letter
    async with AIOKafkaConsumer(dlq, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest") as consumer:
        records: list[Any] = []
        async with asyncio.timeout(10):
            while not records:
                records = [r for batch in (await consumer.getmany(timeout_ms=200)).values() for r in batch]
    [record] = records
    headers = {name: raw.decode() for name, raw in record.headers}
    assert record.key == letter.id.encode()
    assert json.loads(record.value) == {"sku": "A-1"}
    assert headers["ce_id"] == event.id
    assert headers["ce_tenantid"] == tenant.tenant_id
    assert headers["dlq_topic"] == bus.topics.topic_for(event.type, tenant.slug)
    assert int(headers["dlq_partition"]) == letter.partition
    assert int(headers["dlq_offset"]) == letter.offset
    assert headers["dlq_key"] == "o-1"
    assert headers["dlq_error"] == "KeyError: 'sku'"
    assert headers["dlq_attempts"] == "2"
    assert headers["dlq_plugin"] == plugin
    assert headers["dlq_subscription"] == "ship"
    assert "dlq_failed_at" in headers


async def test_start_without_a_broker_raises_backend_unavailable(delivery: StaticDelivery) -> None:
    settings = EventSettings(backend="kafka", bootstrap_servers="127.0.0.1:1", enable_idempotence=False)
    bus = KafkaEventBus(settings, delivery, options=KafkaOptions(io_timeout_seconds=5))
    bus.subscribe("notes", Subscription(event_type="notes.note.created", handler=lambda event, host: None))

    with pytest.raises(BackendUnavailableError, match="kafka"):
        await bus.start()
    await bus.stop()
