"""Event-bus throughput on a real broker: raw aiokafka against ``KafkaEventBus``, in one run.

Paired rounds, on the same broker and topic layout, each ratio against raw aiokafka doing the
same sends (``acks="all"``, 1 KB values) in the same round:

* ``KafkaEventBus.publish``, single events, ``CONCURRENCY`` in flight, against the raw send loop
  (send every value, then await all: the issue's baseline) and against raw ``send_and_wait`` with
  the same concurrency (like for like);
* ``publish``, one event at a time awaited (a request publishing one event), against raw
  ``send_and_wait`` one at a time: the latency of a single publish;
* ``publish_many`` of the same events in one call, against the raw send loop.

Then, without a baseline (costs per event): ``KafkaEventBus`` consuming and dispatching to a
handler in the tenant's context, and (not under ``--quick``) the transactional outbox on a whole
platform (SQLite, and PostgreSQL when ``TEST_DATABASE_URL`` is set): writing events inside
tenant transactions, and the relay publishing the piled-up rows and marking them sent.

Concurrent ``bus.publish`` calls are coalesced into shared record batches by the bus (see
``plexica.events._kafka_batcher``); before that they reached ~0.61x raw aiokafka.

Targets from the events issue: publish >= 0.8x raw aiokafka; dispatch >= 10,000 events/s
(<= 100 us per event); outbox relay >= 5,000 events/s. The topics it creates are deleted at the
end: the test broker keeps everything in memory.

Usage::

    set -a; . /tmp/plexica-services/env; set +a
    .venv/bin/python benchmarks/events_bench.py [--events 20000] [--rounds 5] [--quick]
        [--outbox-events 20000] [--bootstrap 127.0.0.1:59092]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import _paired
import attrs
from _paired import Figure, paired
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from tests.plexica.db.support import fresh_postgres_database

from plexica.events import KafkaEventBus, KafkaOptions, source_for
from plexica.events.outbox import OutboxRelay
from plexica.platform import Platform
from plexica.settings import EventSettings, load_settings
from plexica_sdk import PluginManifest, hookimpl
from plexica_sdk.context import use
from plexica_sdk.protocols import Host
from plexica_sdk.types import Event, EventTypeDef, Subscription, TenantContext

BENCH = "events"

PLUGIN = f"bench{uuid.uuid4().hex[:6]}"  # fresh types, so no earlier run's topics match the consumer
EVENT_TYPE = f"{PLUGIN}.record.created"
DISPATCH_TYPE = f"{PLUGIN}.record.dispatched"  # its own topic: the dispatch runs read only these
OUTBOX_TYPE = f"{PLUGIN}.record.relayed"  # written in transactions, published by the relay
EVENTS_PER_TRANSACTION = 500
SCHEMA = {"type": "object", "properties": {"seq": {"type": "integer"}, "body": {"type": "string"}}}
PAYLOAD = b"x" * 1024
BODY = "x" * 1000  # with the envelope's JSON, about 1 KB of value
PARTITIONS = 3
CONCURRENCY = 2000  # in-flight single publishes, as from many concurrent requests
LINGER_MS = 5
BATCH_BYTES = 256 * 1024


@attrs.frozen
class BenchHost:
    """The handle handlers get; the benchmark handler never calls into it, so it holds only names."""

    plugin: str
    ctx: TenantContext | None


class BenchDelivery:
    """A one-tenant directory answering from a dict, as a host's cache would."""

    def __init__(self, ctx: TenantContext) -> None:
        self.ctx = ctx

    async def context_for(self, event: Event) -> TenantContext | None:
        return self.ctx if event.tenantid == self.ctx.tenant_id else None

    async def is_active(self, plugin: str, tenant_slug: str) -> bool:
        return True

    def host_for(self, plugin: str, ctx: TenantContext | None) -> Host:
        return cast(Host, BenchHost(plugin, ctx))


class BenchPlugin:
    """Declares the outbox benchmark's event type (with the JSON Schema of the others)."""

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(name=PLUGIN, version="1.0.0", event_types=[EventTypeDef(type=OUTBOX_TYPE, schema=SCHEMA)])


@contextlib.asynccontextmanager
async def fresh_database(server_url: str | None) -> AsyncIterator[str | None]:
    """None for SQLite; else an empty PostgreSQL database on the server of ``server_url``, dropped after."""
    if server_url is None:
        yield None
        return
    async with fresh_postgres_database(server_url) as url:
        yield url


async def outbox(bootstrap: str, count: int, server_url: str | None) -> tuple[tuple[float, float], tuple[float, float]]:
    """Write ``count`` events in transactions of ``EVENTS_PER_TRANSACTION`` while no relay runs, then relay them.

    Returns the write rate and the relay rate (from the relay's start until every row is marked sent).
    """
    slug = f"b{uuid.uuid4().hex[:10]}"
    async with fresh_database(server_url) as url:
        with tempfile.TemporaryDirectory() as data_dir:
            settings = load_settings(
                environ={},
                data_dir=data_dir,
                load_entry_points=False,
                environment="test",
                database={"url": url} if url else {},
                events={
                    "backend": "kafka",
                    "bootstrap_servers": bootstrap,
                    "partitions": PARTITIONS,
                    "replication_factor": 1,
                    "enable_idempotence": False,
                    "dead_letter_topic": f"{slug}-dlq",
                    "kafka": {"linger_ms": LINGER_MS, "max_batch_size": BATCH_BYTES},
                    "outbox": {"batch_size": 2000},
                },
            )
            async with Platform(settings, plugins=[BenchPlugin()]) as platform:
                tenant = await platform.tenants.provision(slug)
                ctx = TenantContext(tenant_id=tenant.id, slug=tenant.slug, schema=tenant.schema)
                host = platform.host_for(PLUGIN, ctx)
                await platform.relay.__aexit__(None, None, None)  # rows pile up, as while the broker is down
                clock = Clock(count)
                for start in range(0, count, EVENTS_PER_TRANSACTION):
                    async with host.session() as session:
                        for seq in range(start, min(start + EVENTS_PER_TRANSACTION, count)):
                            await host.publish(OUTBOX_TYPE, {"seq": seq, "body": BODY}, session=session)
                written = clock.done()
                relay = OutboxRelay(platform.outbox, platform.bus, settings.events)
                clock = Clock(count)
                async with relay:
                    await relay.drain(timeout=600)
                relayed = clock.done()
                assert relay.published == count, (relay.published, count)
            await delete_topics(bootstrap, lambda topic: topic.startswith(f"{slug}."))
    return written, relayed


async def delete_topics(bootstrap: str, which: Any) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [topic for topic in await admin.list_topics() if which(topic)]
        if topics:
            await admin.delete_topics(topics)
    finally:
        await admin.close()


def make_events(ctx: TenantContext, count: int, event_type: str = EVENT_TYPE) -> list[Event]:
    return [
        Event(type=event_type, source=source_for(PLUGIN), tenantid=ctx.tenant_id, data={"seq": i, "body": BODY})
        for i in range(count)
    ]


def raw_producer(bootstrap: str, linger_ms: int = LINGER_MS) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=linger_ms,
        max_batch_size=BATCH_BYTES,
    )


class Clock:
    """Wall time and this process's CPU time: on a shared machine the second is the steadier."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def done(self) -> tuple[float, float]:
        """Events per second, and CPU microseconds per event."""
        wall, cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        return self.count / wall, cpu / self.count * 1e6


async def raw_publish(producer: AIOKafkaProducer, topic: str, count: int) -> tuple[float, float]:
    """The issue's baseline: send every pre-encoded 1 KB value, then await all acknowledgements."""
    clock = Clock(count)
    futures = [await producer.send(topic, PAYLOAD) for _ in range(count)]
    await asyncio.gather(*futures)
    return clock.done()


async def raw_publish_concurrent(
    producer: AIOKafkaProducer, topic: str, count: int, concurrency: int = CONCURRENCY
) -> tuple[float, float]:
    """The baseline for single publishes: ``concurrency`` tasks each awaiting one acknowledgement at a time."""
    clock = Clock(count)
    await run_concurrently(count, lambda i: producer.send_and_wait(topic, PAYLOAD), concurrency)
    return clock.done()


async def run_concurrently(count: int, call: Callable[[int], Awaitable[Any]], concurrency: int = CONCURRENCY) -> None:
    pending = iter(range(count))

    async def worker() -> None:
        for i in pending:
            await call(i)

    async with asyncio.TaskGroup() as tasks:
        for _ in range(concurrency):
            tasks.create_task(worker())


async def bus_publish(
    bus: KafkaEventBus, ctx: TenantContext, count: int, mode: str, event_type: str = EVENT_TYPE
) -> tuple[float, float]:
    """Publish ``count`` pre-built events: in one call, one by one concurrently, or one at a time awaited."""
    events = make_events(ctx, count, event_type)
    with use(ctx):  # as from a request or handler: the tenant's slug is known
        clock = Clock(count)
        if mode == "one call":
            await bus.publish_many(events)
        elif mode == "sequential":
            for event in events:
                await bus.publish(event)
        else:
            await run_concurrently(count, lambda i: bus.publish(events[i]))
        return clock.done()


async def dispatch(
    settings: EventSettings, ctx: TenantContext, plugin: str, count: int
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Rate from the first handled event to the last, and including the group join; CPU per event."""
    done = asyncio.Event()
    stamps: list[float] = []

    async def handler(event: Event, host: Any) -> None:
        stamps.append(time.perf_counter())
        if len(stamps) >= count:
            done.set()

    options = KafkaOptions(max_poll_records=2000, concurrency_per_partition=64)
    bus = KafkaEventBus(settings, BenchDelivery(ctx), options=options)
    bus.subscribe(plugin, Subscription(event_type=DISPATCH_TYPE, handler=handler))
    clock = Clock(count)
    async with bus:
        await asyncio.wait_for(done.wait(), timeout=300)
        _, cpu = clock.done()
    return ((len(stamps) - 1) / (stamps[-1] - stamps[0]), cpu), (len(stamps) / (stamps[-1] - clock.wall), cpu)


def cost(measure: Callable[[], Awaitable[tuple[float, float]]]) -> _paired.Measure:
    """A measure returning (events/s, CPU us/event) as the seconds per event that pairing compares."""

    async def seconds() -> float:
        rate, _ = await measure()
        return 1 / rate

    return seconds


async def run(args: argparse.Namespace) -> list[Figure]:
    rounds, count = _paired.rounds_for(args), (2_000 if args.quick else args.events)
    sequential = max(20, count // 100)
    tenant = f"bench{uuid.uuid4().hex[:8]}"
    ctx = TenantContext(tenant_id=str(uuid.uuid4()), slug=tenant, schema=f"tenant_{tenant}")
    raw_topic = f"{tenant}-raw"
    admin = AIOKafkaAdminClient(bootstrap_servers=args.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(raw_topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    settings = EventSettings(
        backend="kafka",
        bootstrap_servers=args.bootstrap,
        partitions=PARTITIONS,
        replication_factor=1,
        enable_idempotence=False,  # Tansu does not support aiokafka's idempotent producer
        dead_letter_topic=f"{tenant}-dlq",
    )
    publisher = KafkaEventBus(
        settings, BenchDelivery(ctx), options=KafkaOptions(linger_ms=LINGER_MS, max_batch_size=BATCH_BYTES)
    )
    publisher.registry.register(PLUGIN, EventTypeDef(type=EVENT_TYPE))
    publisher.registry.register(PLUGIN, EventTypeDef(type=DISPATCH_TYPE))
    figures: list[Figure] = []
    try:
        async with raw_producer(args.bootstrap) as producer, raw_producer(args.bootstrap, 0) as eager, publisher:
            await producer.send_and_wait(raw_topic, b"warm-up")
            await eager.send_and_wait(raw_topic, b"warm-up")
            with use(ctx):  # topic creation and metadata out of the timing
                await publisher.publish(make_events(ctx, 1)[0])
            loop = cost(lambda: raw_publish(producer, raw_topic, count))
            pairs = [
                (f"bus.publish, {CONCURRENCY} concurrent", "single", count, "raw send() loop, then await all", loop),
                (
                    f"bus.publish, {CONCURRENCY} concurrent",
                    "single",
                    count,
                    f"raw send_and_wait, {CONCURRENCY} concurrent",
                    cost(lambda: raw_publish_concurrent(producer, raw_topic, count)),
                ),
                (
                    "bus.publish, one at a time",
                    "sequential",
                    sequential,
                    "raw send_and_wait, one at a time, linger 0",
                    cost(lambda: raw_publish_concurrent(eager, raw_topic, sequential, 1)),
                ),
                ("bus.publish_many, one call", "one call", count, "raw send() loop, then await all", loop),
            ]
            for name, mode, n, baseline_name, baseline in pairs:
                subject = cost(functools.partial(bus_publish, publisher, ctx, n, mode))
                figure = await paired(BENCH, name, subject, baseline_name, baseline, rounds=rounds)
                met = "ok" if (figure.ratio or 0) >= 0.8 else "MISSED"
                figures.append(attrs.evolve(figure, note=f"target >= 0.8x: {met}"))
            with use(ctx):
                await publisher.publish_many(make_events(ctx, count, DISPATCH_TYPE))

        async def dispatched() -> float:  # a fresh consumer group each time reads them all again
            first_to_last, _ = await dispatch(settings, ctx, f"bench-{uuid.uuid4().hex[:6]}", count)
            return 1 / first_to_last[0]

        figure = await _paired.single(BENCH, "bus consume + dispatch, per event", dispatched, rounds=min(rounds, 3))
        figures.append(attrs.evolve(figure, note=f"target <= 100 us: {'ok' if figure.subject <= 1e-4 else 'MISSED'}"))
        if not args.quick:
            for name, url in (("SQLite", None), ("PostgreSQL", args.database_url)):
                if name == "PostgreSQL" and url is None:
                    continue
                written, relayed = await outbox(args.bootstrap, args.outbox_events, url)
                figures.append(Figure(BENCH, f"outbox write ({name}), per event", 1 / written[0], 1))
                note = f"target <= 200 us: {'ok' if relayed[0] >= 5_000 else 'MISSED'}"
                figures.append(Figure(BENCH, f"outbox relay ({name}), per event", 1 / relayed[0], 1, note=note))
    finally:  # the test broker keeps everything in memory
        topics = [raw_topic, settings.dead_letter_topic]
        topics += [publisher.topics.topic_for(t, tenant) for t in (EVENT_TYPE, DISPATCH_TYPE)]
        await delete_topics(args.bootstrap, lambda topic: topic in topics)
    return figures


def main(argv: list[str]) -> int:
    parser = _paired.parser(__doc__, rounds=5)
    parser.add_argument("--bootstrap", default=os.environ.get("TEST_KAFKA_BOOTSTRAP", "127.0.0.1:59092"))
    parser.add_argument("--events", type=int, default=20_000, help="events per publish round (--quick: 2,000)")
    parser.add_argument("--outbox-events", type=int, default=20_000)
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"), help="PostgreSQL server")
    return _paired.finish(asyncio.run(run(parser.parse_args(argv))))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
