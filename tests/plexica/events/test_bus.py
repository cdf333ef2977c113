"""Behaviour both buses share: tenant isolation and context, retries, dead letters, ordering, lifecycle."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from plexica.events import EventBus, source_for
from plexica_sdk import context
from plexica_sdk.errors import BackendUnavailableError, EventError, NotFoundError
from plexica_sdk.types import Event, EventTypeDef, Subscription
from tests.plexica.events.conftest import MakeBus, Seen, StaticDelivery, event_for, eventually, unique

pytestmark = pytest.mark.anyio


def note_types(plugin: str) -> dict[str, list[EventTypeDef]]:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    return {
        plugin: [
            EventTypeDef(type=f"{plugin}.note.created", schema=schema),
            EventTypeDef(type=f"{plugin}.note.deleted"),
        ]
    }


def recorder(seen: list[Seen]) -> Any:
    async def handler(event: Event, host: Any) -> None:
        current = context.get()
        seen.append(Seen(event, current, host.tenant.slug if current is not None else None))

    return handler


@pytest.mark.parametrize("topology", ["per_tenant", "shared"])
async def test_each_tenant_event_runs_in_its_own_tenant_context(
    make_bus: MakeBus, delivery: StaticDelivery, topology: str
) -> None:
    plugin = unique("p")
    acme, globex = delivery.add_tenant(), delivery.add_tenant()
    seen: list[Seen] = []
    bus = make_bus(plugin_types=note_types(plugin), topology=topology)
    bus.subscribe(plugin, Subscription(event_type=f"{plugin}.note.*", handler=recorder(seen), name="notes"))
    await bus.start()

    events = [event_for(plugin, ctx, data={"n": i}) for i, ctx in enumerate([acme, globex, acme, globex, acme])]
    with context.use(acme):  # publishing from inside one tenant does not leak into another's topics
        await bus.publish_many(events)
    await eventually(lambda: len(seen) == len(events))

    assert sorted(s.event.id for s in seen) == sorted(e.id for e in events)
    for s in seen:
        owner = delivery.tenants[s.event.tenantid or ""]
        assert s.context == owner
        assert s.host_tenant == owner.slug


async def test_global_event_runs_without_tenant_context(make_bus: MakeBus) -> None:
    plugin = unique("p")
    seen: list[Seen] = []
    bus = make_bus(plugin_types=note_types(plugin))
    bus.subscribe(plugin, Subscription(event_type=f"{plugin}.note.deleted", handler=recorder(seen), name="g"))
    await bus.start()

    await bus.publish(event_for(plugin, None, "note.deleted"))
    await eventually(lambda: len(seen) == 1)

    assert seen[0].context is None
    assert seen[0].event.tenantid is None


async def test_plugin_inactive_for_tenant_is_not_called(make_bus: MakeBus, delivery: StaticDelivery) -> None:
    plugin = unique("p")
    enabled, disabled = delivery.add_tenant(), delivery.add_tenant()
    delivery.disabled.add((plugin, disabled.slug))
    seen: list[Seen] = []
    bus = make_bus(plugin_types=note_types(plugin))
    bus.subscribe(plugin, Subscription(event_type=f"{plugin}.note.created", handler=recorder(seen), name="n"))
    await bus.start()

    await bus.publish(event_for(plugin, disabled, data={"n": 1}))
    await bus.publish(event_for(plugin, enabled, data={"n": 2}))
    await eventually(lambda: (plugin, disabled.slug) in delivery.checked and len(seen) == 1)

    assert [s.event.tenantid for s in seen] == [enabled.tenant_id]


async def test_handler_failing_every_attempt_lands_in_dlq_and_replay_keeps_the_id(
    make_bus: MakeBus, delivery: StaticDelivery
) -> None:
    plugin = unique("p")
    tenant = delivery.add_tenant()
    calls: list[Event] = []
    healthy = asyncio.Event()

    async def flaky(event: Event, host: Any) -> None:
        calls.append(event)
        if not healthy.is_set():
            raise RuntimeError("downstream said no")

    bus = make_bus(plugin_types=note_types(plugin))
    bus.subscribe(plugin, Subscription(event_type=f"{plugin}.note.created", handler=flaky, name="sync-index"))
    await bus.start()
    event = event_for(plugin, tenant, data={"n": 7}, subject="note-1")
    await bus.publish(event, key="note-1")

    letters: list[Any] = []

    async def dead_lettered() -> None:
        while not letters:
            letters.extend(await bus.dlq_list())
            await asyncio.sleep(0.05)

    async with asyncio.timeout(20):
        await dead_lettered()
    [letter] = letters
    assert len(calls) == 3
    assert letter.event == event
    assert letter.topic == bus.topics.topic_for(event.type, tenant.slug)
    assert letter.key == "note-1"
    assert letter.error == "RuntimeError: downstream said no"
    assert letter.attempts == 3
    assert letter.plugin == plugin
    assert letter.subscription == "sync-index"
    assert dict(letter.headers)["ce_id"] == event.id.encode()
    assert abs(letter.failed_at - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=30)
    if isinstance(letter.partition, int):  # Kafka: the record's position
        assert letter.offset is not None and letter.offset >= 0
    assert await bus.dlq_get(letter.id) == letter

    healthy.set()
    await bus.dlq_replay(letter.id)
    await eventually(lambda: len(calls) == 4)
    assert calls[-1].id == event.id
    assert calls[-1] == event
    assert await bus.dlq_list() == []
    with pytest.raises(NotFoundError):
        await bus.dlq_get(letter.id)


async def test_dismissed_dead_letter_is_gone(make_bus: MakeBus, delivery: StaticDelivery) -> None:
    plugin = unique("p")
    tenant = delivery.add_tenant()

    async def broken(event: Event, host: Any) -> None:
        raise ValueError("bad")

    bus = make_bus(plugin_types=note_types(plugin))
    bus.subscribe(plugin, Subscription(event_type=f"{plugin}.note.deleted", handler=broken, max_attempts=1))
    await bus.start()
    await bus.publish(event_for(plugin, tenant, "note.deleted"))
    await bus.publish(event_for(plugin, tenant, "note.deleted"))

    letters: list[Any] = []

    async def both_dead() -> None:
        while len(letters) < 2:
            letters[:] = await bus.dlq_list()
            await asyncio.sleep(0.05)

    async with asyncio.timeout(20):
        await both_dead()
    await bus.dlq_dismiss(letters[0].id)

    assert [letter.id for letter in await bus.dlq_list()] == [letters[1].id]
    assert letters[1].attempts == 1
    with pytest.raises(NotFoundError):
        await bus.dlq_dismiss(letters[0].id)
    with pytest.raises(NotFoundError):
        await bus.dlq_replay("no-such-letter")


@pytest.mark.parametrize(
    ("kind", "data", "source_plugin", "message"),
    [
        ("note.archived", {"n": 1}, None, "unknown event type"),
        ("note.created", {"n": "one"}, None, "fails its schema at data.n"),
        ("note.created", {}, None, "fails its schema"),
        ("note.created", {"n": 1}, "other", "may not publish"),
        ("note.deleted", {"n": float("nan")}, None, "cannot be encoded"),
    ],
    ids=["unknown-type", "wrong-type-in-payload", "missing-field", "another-plugins-type", "not-json"],
)
async def test_bad_publish_raises_and_sends_nothing(
    make_bus: MakeBus,
    delivery: StaticDelivery,
    kind: str,
    data: dict[str, Any],
    source_plugin: str | None,
    message: str,
) -> None:
    plugin, other = unique("p"), unique("o")
    tenant = delivery.add_tenant()
    seen: list[Seen] = []
    types = note_types(plugin) | {other: [EventTypeDef(type=f"{other}.thing.done")]}
    bus = make_bus(plugin_types=types)
    bus.subscribe(plugin, Subscription(event_type=f"{plugin}.*", handler=recorder(seen), name="all"))
    await bus.start()

    good = event_for(plugin, tenant, data={"n": 0})
    bad = event_for(plugin, tenant, kind, data=data)
    if source_plugin is not None:  # ``plugin`` publishing a type ``other`` declared
        bad = Event(type=f"{other}.thing.done", source=source_for(plugin), tenantid=tenant.tenant_id, data=data)
    with pytest.raises(EventError, match=message):
        await bus.publish_many([good, bad], keys=["k", "k"])

    sentinel = event_for(plugin, tenant, data={"n": 1})
    await bus.publish(sentinel, key="k")  # same topic and key as ``good``: it would arrive first
    await eventually(lambda: len(seen) >= 1)
    assert [s.event.id for s in seen] == [sentinel.id]


async def test_events_with_the_same_key_are_handled_in_order(make_bus: MakeBus, delivery: StaticDelivery) -> None:
    plugin = unique("p")
    tenant = delivery.add_tenant()
    order: dict[str, list[int]] = {"a": [], "b": []}
    running = 0
    overlap = 0

    async def slow(event: Event, host: Any) -> None:
        nonlocal running, overlap
        running += 1
        overlap = max(overlap, running)
        await asyncio.sleep(0.002 * (event.data["n"] % 3))
        order[event.subject or ""].append(event.data["n"])
        running -= 1

    bus = make_bus(plugin_types=note_types(plugin))
    bus.subscribe(plugin, Subscription(event_type=f"{plugin}.note.created", handler=slow))
    await bus.start()
    events = [event_for(plugin, tenant, data={"n": i}, subject="ab"[i % 2]) for i in range(80)]
    await bus.publish_many(events)
    await eventually(lambda: len(order["a"]) + len(order["b"]) == 80)

    assert order["a"] == list(range(0, 80, 2))
    assert order["b"] == list(range(1, 80, 2))


async def test_stop_lets_in_flight_handlers_finish_then_refuses_publish(
    make_bus: MakeBus, delivery: StaticDelivery
) -> None:
    plugin = unique("p")
    tenant = delivery.add_tenant()
    started, finished = asyncio.Event(), asyncio.Event()

    async def slow(event: Event, host: Any) -> None:
        started.set()
        await asyncio.sleep(0.3)
        finished.set()

    bus = make_bus(plugin_types=note_types(plugin))
    bus.subscribe(plugin, Subscription(event_type=f"{plugin}.note.deleted", handler=slow))
    with pytest.raises(BackendUnavailableError, match="not started"):
        await bus.publish(event_for(plugin, tenant, "note.deleted"))
    await bus.start()
    await bus.publish(event_for(plugin, tenant, "note.deleted"))
    async with asyncio.timeout(20):
        await started.wait()
    await bus.stop()

    assert finished.is_set()
    with pytest.raises(BackendUnavailableError, match="stopped"):
        await bus.publish(event_for(plugin, tenant, "note.deleted"))
    with pytest.raises(EventError, match="before the event bus starts"):
        bus.subscribe(plugin, Subscription(event_type=f"{plugin}.note.created", handler=slow))


async def test_handler_timeout_counts_as_a_failed_attempt(make_bus: MakeBus, delivery: StaticDelivery) -> None:
    plugin = unique("p")
    tenant = delivery.add_tenant()

    async def hangs(event: Event, host: Any) -> None:
        await asyncio.sleep(10)

    bus: EventBus = make_bus(plugin_types=note_types(plugin), handler_timeout_seconds=0.05)
    bus.subscribe(plugin, Subscription(event_type=f"{plugin}.note.deleted", handler=hangs, max_attempts=2))
    await bus.start()
    await bus.publish(event_for(plugin, tenant, "note.deleted"))

    letters: list[Any] = []

    async def dead() -> None:
        while not letters:
            letters.extend(await bus.dlq_list())
            await asyncio.sleep(0.05)

    async with asyncio.timeout(20):
        await dead()
    assert letters[0].error == "TimeoutError: handler did not finish within 0.05s"
    assert letters[0].attempts == 2
