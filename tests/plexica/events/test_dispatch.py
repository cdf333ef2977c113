"""The shared dispatch rules, exercised directly and through the in-process bus."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from plexica.events import MemoryEventBus, encode, source_for
from plexica.events.dispatch import Dispatcher, Inbound
from plexica.events.dlq import REPLAY_PLUGIN, REPLAY_SUBSCRIPTION
from plexica.events.topics import Topics
from plexica.settings import EventSettings
from plexica_sdk.errors import EventError
from plexica_sdk.types import Event, EventTypeDef, Subscription
from tests.plexica.events.conftest import StaticDelivery, event_for

pytestmark = pytest.mark.anyio


class FakeSleep:
    """Records backoff delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def inbound(event: Event, topic: str, headers: list[tuple[str, bytes]] | None = None) -> Inbound:
    return Inbound(topic, event, None, tuple(encode(event)[1] + (headers or [])))


async def test_retries_back_off_exponentially_then_dead_letter(delivery: StaticDelivery) -> None:
    tenant = delivery.add_tenant()
    sleep = FakeSleep()
    dispatcher = Dispatcher(EventSettings(retry_backoff_seconds=0.5), delivery, Topics(), sleep=sleep)
    calls = 0

    def always_fails(event: Event, host: Any) -> None:  # sync handlers are allowed
        nonlocal calls
        calls += 1
        raise RuntimeError("nope")

    dispatcher.add("notes", Subscription(event_type="notes.note.created", handler=always_fails, max_attempts=4))
    event = event_for("notes", tenant)

    [letter] = await dispatcher.deliver("notes", inbound(event, f"{tenant.slug}.notes.note.created"))

    assert calls == 4
    assert sleep.delays == [0.5, 1.0, 2.0]
    assert letter.attempts == 4
    assert letter.partition is None and letter.offset is None


async def test_unknown_tenant_and_topic_mismatch_are_dropped(
    delivery: StaticDelivery, caplog: pytest.LogCaptureFixture
) -> None:
    acme, globex = delivery.add_tenant(), delivery.add_tenant()
    called: list[Event] = []
    dispatcher = Dispatcher(EventSettings(), delivery, Topics())
    dispatcher.add("notes", Subscription(event_type="notes.*", handler=lambda event, host: called.append(event)))
    stranger = Event(type="notes.note.created", source=source_for("notes"), tenantid="no-such-tenant")

    with caplog.at_level(logging.WARNING):
        assert await dispatcher.deliver("notes", inbound(stranger, "acme.notes.note.created")) == []
        forged = event_for("notes", globex)
        assert await dispatcher.deliver("notes", inbound(forged, f"{acme.slug}.notes.note.created")) == []

    assert called == []
    assert "unknown tenant" in caplog.text
    assert "does not belong to its tenant" in caplog.text


async def test_replayed_record_reaches_only_the_failed_subscription(delivery: StaticDelivery) -> None:
    tenant = delivery.add_tenant()
    called: list[str] = []
    dispatcher = Dispatcher(EventSettings(), delivery, Topics())

    def recording(name: str) -> Any:
        return lambda event, host: called.append(name)

    for name in ("first", "second"):
        dispatcher.add("notes", Subscription(event_type="notes.*", handler=recording(name), name=name))
    dispatcher.add("crm", Subscription(event_type="notes.*", handler=lambda e, h: called.append("crm"), name="first"))
    replay = [(REPLAY_PLUGIN, b"notes"), (REPLAY_SUBSCRIPTION, b"second")]
    msg = inbound(event_for("notes", tenant), f"{tenant.slug}.notes.note.created", replay)

    await dispatcher.deliver("notes", msg)
    await dispatcher.deliver("crm", msg)

    assert called == ["second"]


async def test_delivery_errors_propagate_to_the_bus(delivery: StaticDelivery) -> None:
    tenant = delivery.add_tenant()
    dispatcher = Dispatcher(EventSettings(), delivery, Topics())
    dispatcher.add("notes", Subscription(event_type="notes.*", handler=lambda event, host: None))
    event = event_for("notes", tenant)
    delivery.fail_once.add(event.id)

    with pytest.raises(ConnectionError):
        await dispatcher.deliver("notes", inbound(event, f"{tenant.slug}.notes.note.created"))


def test_subscriptions_are_checked(delivery: StaticDelivery) -> None:
    dispatcher = Dispatcher(EventSettings(), delivery, Topics())
    dispatcher.add("notes", Subscription(event_type="crm.*", handler=lambda event, host: None, name="a"))

    with pytest.raises(EventError, match="already has a subscription named 'a'"):
        dispatcher.add("notes", Subscription(event_type="crm.deal.won", handler=lambda event, host: None, name="a"))
    with pytest.raises(EventError, match="invalid plugin name"):
        dispatcher.add("Notes", Subscription(event_type="crm.*", handler=lambda event, host: None))
    with pytest.raises(EventError, match="invalid event type"):
        dispatcher.add("notes", Subscription(event_type="crm", handler=lambda event, host: None))


async def test_memory_handlers_get_their_own_copy_of_each_event(delivery: StaticDelivery) -> None:
    tenant = delivery.add_tenant()
    bus = MemoryEventBus(EventSettings(), delivery)
    bus.registry.register("notes", EventTypeDef(type="notes.note.created"))
    seen: list[Any] = []

    async def mutating(event: Event, host: Any) -> None:
        event.data["touched"] = True

    async def reading(event: Event, host: Any) -> None:
        seen.append(event.data)

    bus.subscribe("alpha", Subscription(event_type="notes.note.created", handler=mutating))
    bus.subscribe("beta", Subscription(event_type="notes.note.created", handler=reading))
    async with bus:
        await bus.publish(event_for("notes", tenant, data={"n": 1}))
        await bus.join()

    assert seen == [{"n": 1}]


async def test_publish_refuses_unknown_tenants_bad_sources_and_mismatched_keys(delivery: StaticDelivery) -> None:
    bus = MemoryEventBus(EventSettings(), delivery)
    bus.registry.register("notes", EventTypeDef(type="notes.note.created"))
    async with bus:
        with pytest.raises(EventError, match="unknown tenant"):
            await bus.publish(Event(type="notes.note.created", source=source_for("notes"), tenantid="ghost"))
        with pytest.raises(EventError, match="is not '/plugins/"):
            await bus.publish(Event(type="notes.note.created", source="notes"))
        with pytest.raises(EventError, match="2 keys for 1 events"):
            await bus.publish_many([event_for("notes", None)], keys=["a", "b"])
