"""Event-bus throughput on a real broker: raw aiokafka against ``KafkaEventBus``, in one run.

Measures, on the same broker and topic layout:

* raw aiokafka publishing 1 KB values (``acks="all"``, batched: send everything, then await);
* ``KafkaEventBus.publish_many`` and concurrent ``publish`` of ~1 KB events (validation, envelope, headers);
* raw aiokafka consuming, and ``KafkaEventBus`` consuming and dispatching to a handler in the
  tenant's context (decode, tenant lookup, activity check, handler, commit);
* the transactional outbox on a whole platform (SQLite files, and PostgreSQL when
  ``TEST_DATABASE_URL`` is set): writing events inside tenant transactions, and the relay
  publishing the piled-up rows to the same broker and marking them sent.

Concurrent ``bus.publish`` calls are coalesced into shared record batches by the bus (see
``plexica.events._kafka_batcher``); before that they reached ~0.61x raw aiokafka.

Targets from the events issue: direct publish >= 0.8x raw aiokafka; dispatch >= 10,000 events/s;
outbox relay >= 5,000 events/s.
Each measure also reports this process's CPU time per event, which stays meaningful when other
work shares the machine (wall-clock rates then swing by 2x between rounds). The topics it creates
are deleted at the end: the test broker keeps everything in memory.

Usage::

    set -a; . /tmp/plexica-services/env; set +a
    .venv/bin/python benchmarks/events_bench.py [--events 50000] [--rounds 3] [--outbox-events 20000]
        [--bootstrap 127.0.0.1:59092]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, cast

import attrs
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from plexica.events import KafkaEventBus, KafkaOptions, source_for
from plexica.events.outbox import OutboxRelay
from plexica.platform import Platform
from plexica.settings import EventSettings, load_settings
from plexica_sdk import PluginManifest, hookimpl
from plexica_sdk.context import use
from plexica_sdk.protocols import Host
from plexica_sdk.types import Event, EventTypeDef, Subscription, TenantContext

PLUGIN = f"bench{uuid.uuid4().hex[:6]}"  # fresh types, so no earlier run's topics match the consumer
EVENT_TYPE = f"{PLUGIN}.record.created"
DISPATCH_TYPE = f"{PLUGIN}.record.dispatched"  # its own topic: the dispatch runs read only these
CHECKED_TYPE = f"{PLUGIN}.record.checked"  # the same payload, with a JSON Schema to validate
OUTBOX_TYPE = f"{PLUGIN}.record.relayed"  # written in transactions, published by the relay
EVENTS_PER_TRANSACTION = 500
SCHEMA = {"type": "object", "properties": {"seq": {"type": "integer"}, "body": {"type": "string"}}}
PAYLOAD = b"x" * 1024
BODY = "x" * 1000  # with the envelope's JSON, about 1 KB of value
PARTITIONS = 3
CONCURRENCY = 2000  # in-flight single publishes, as from many concurrent requests
CHUNK = 1000  # events per publish_many call in the pipelined measure
CHUNKS_IN_FLIGHT = 8  # e.g. an outbox relay with several batches in flight
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
async def fresh_database(server_url: str | None) -> Any:
    """None for SQLite; else an empty PostgreSQL database on the server of ``server_url``, dropped after."""
    if server_url is None:
        yield None
        return
    name = f"plexica_bench_{secrets.token_hex(4)}"
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.dispose()


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


def raw_producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=LINGER_MS,
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


async def raw_publish_concurrent(producer: AIOKafkaProducer, topic: str, count: int) -> tuple[float, float]:
    """The baseline for single publishes: ``CONCURRENCY`` tasks each awaiting one acknowledgement at a time."""
    clock = Clock(count)
    await run_concurrently(count, lambda i: producer.send_and_wait(topic, PAYLOAD))
    return clock.done()


async def run_concurrently(count: int, call: Callable[[int], Awaitable[Any]], concurrency: int = CONCURRENCY) -> None:
    pending = iter(range(count))

    async def worker() -> None:
        for i in pending:
            await call(i)

    async with asyncio.TaskGroup() as tasks:
        for _ in range(concurrency):
            tasks.create_task(worker())


async def raw_consume(bootstrap: str, topic: str, count: int) -> tuple[float, float]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", max_poll_records=2000)
    async with consumer:
        seen = 0
        clock = None
        while seen < count:
            batch = await consumer.getmany(timeout_ms=1000, max_records=2000)
            if clock is None and batch:
                clock = Clock(count)
            seen += sum(len(records) for records in batch.values())
        assert clock is not None
        return clock.done()


async def bus_publish(
    bus: KafkaEventBus, ctx: TenantContext, count: int, mode: str, event_type: str = EVENT_TYPE
) -> tuple[float, float]:
    """Publish ``count`` pre-built events: in one call, in pipelined chunks, or one by one concurrently."""
    events = make_events(ctx, count, event_type)
    with use(ctx):  # as from a request or handler: the tenant's slug is known
        clock = Clock(count)
        if mode == "one call":
            await bus.publish_many(events)
        elif mode == "chunks":
            chunk = lambda i: bus.publish_many(events[i * CHUNK : (i + 1) * CHUNK])  # noqa: E731
            await run_concurrently(count // CHUNK, chunk, CHUNKS_IN_FLIGHT)
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


async def main(bootstrap: str, count: int, rounds: int, outbox_count: int, database_url: str | None) -> None:
    tenant = f"bench{uuid.uuid4().hex[:8]}"
    ctx = TenantContext(tenant_id=str(uuid.uuid4()), slug=tenant, schema=f"tenant_{tenant}")
    raw_topic = f"{tenant}-raw"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(raw_topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    settings = EventSettings(
        backend="kafka",
        bootstrap_servers=bootstrap,
        partitions=PARTITIONS,
        replication_factor=1,
        enable_idempotence=False,  # Tansu does not support aiokafka's idempotent producer
        dead_letter_topic=f"{tenant}-dlq",
    )
    options = KafkaOptions(linger_ms=LINGER_MS, max_batch_size=BATCH_BYTES)
    publisher = KafkaEventBus(settings, BenchDelivery(ctx), options=options)
    publisher.registry.register(PLUGIN, EventTypeDef(type=EVENT_TYPE))
    publisher.registry.register(PLUGIN, EventTypeDef(type=DISPATCH_TYPE))
    publisher.registry.register(PLUGIN, EventTypeDef(type=CHECKED_TYPE, schema=SCHEMA))

    measures: dict[str, Callable[[], Awaitable[tuple[float, float]]]] = {}
    results: dict[str, list[tuple[float, float]]] = {}
    async with raw_producer(bootstrap) as producer, publisher:
        await producer.send_and_wait(raw_topic, b"warm-up")
        for event_type in (EVENT_TYPE, CHECKED_TYPE):  # topic creation and metadata out of the timing
            with use(ctx):
                await publisher.publish(make_events(ctx, 1, event_type)[0])
        measures = {
            RAW: lambda: raw_publish(producer, raw_topic, count),
            RAW_CONCURRENT: lambda: raw_publish_concurrent(producer, raw_topic, count),
            MANY: lambda: bus_publish(publisher, ctx, count, "one call"),
            CHUNKS: lambda: bus_publish(publisher, ctx, count, "chunks"),
            CHUNKS_CHECKED: lambda: bus_publish(publisher, ctx, count, "chunks", CHECKED_TYPE),
            SINGLE: lambda: bus_publish(publisher, ctx, count, "single"),
        }
        # Interleave the measures so broker warm-up and machine noise spread over all of them.
        for _ in range(rounds):
            for name, measure in measures.items():
                results.setdefault(name, []).append(await measure())
        with use(ctx):
            await publisher.publish_many(make_events(ctx, count, DISPATCH_TYPE))
    try:
        results[RAW_READ] = [await raw_consume(bootstrap, raw_topic, 2 * rounds * count + 1)]
        for _ in range(rounds):  # a fresh consumer group each time reads them all again
            first_to_last, with_join = await dispatch(settings, ctx, f"bench-{uuid.uuid4().hex[:6]}", count)
            results.setdefault(DISPATCH, []).append(first_to_last)
            results.setdefault(DISPATCH_JOIN, []).append(with_join)
        for _ in range(rounds):
            for name, url in (("SQLite", None), ("PostgreSQL", database_url)):
                if name == "PostgreSQL" and url is None:
                    continue
                written, relayed = await outbox(bootstrap, outbox_count, url)
                results.setdefault(f"outbox write ({name}, {EVENTS_PER_TRANSACTION}/transaction)", []).append(written)
                results.setdefault(f"outbox relay ({name}) publish + mark sent", []).append(relayed)
    finally:  # the test broker keeps everything in memory
        topics = [raw_topic, settings.dead_letter_topic]
        topics += [publisher.topics.topic_for(t, tenant) for t in (EVENT_TYPE, CHECKED_TYPE, DISPATCH_TYPE)]
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.delete_topics(topics)
        finally:
            await admin.close()
    report(count, rounds, results)


RAW = "raw aiokafka send() loop, then await all"
RAW_CONCURRENT = f"raw aiokafka send_and_wait, {CONCURRENCY} concurrent"
MANY = "bus.publish_many, one call"
CHUNKS = f"bus.publish_many, {CHUNK}-event calls, {CHUNKS_IN_FLIGHT} concurrent"
CHUNKS_CHECKED = "  same, type with a JSON Schema"
SINGLE = f"bus.publish, {CONCURRENCY} concurrent"
RAW_READ = "raw aiokafka consume"
DISPATCH = "bus consume + dispatch (first to last event)"
DISPATCH_JOIN = "bus consume + dispatch (incl. start and group join)"
BASELINE = {MANY: RAW, CHUNKS: RAW, CHUNKS_CHECKED: RAW, SINGLE: RAW_CONCURRENT}
TARGETS = {
    MANY: 0.8,
    CHUNKS: 0.8,
    CHUNKS_CHECKED: 0.8,
    SINGLE: 0.8,
    DISPATCH: 10_000,
    "outbox relay (SQLite) publish + mark sent": 5_000,
    "outbox relay (PostgreSQL) publish + mark sent": 5_000,
}


def report(count: int, rounds: int, results: dict[str, list[tuple[float, float]]]) -> None:
    """Best wall-clock rate per measure, and the lowest CPU cost per event of this process.

    The CPU ratio (baseline µs / our µs) is what the wall ratio would be if the publisher's CPU
    were the only limit; it holds steady when other work shares the machine.
    """
    rate = {name: max(r for r, _ in runs) for name, runs in results.items()}
    cpu = {name: min(c for _, c in runs) for name, runs in results.items()}
    print(f"\n{count:,} events of ~1 KB per publish measure; best of {rounds} interleaved rounds\n")
    header = f"{'measure':<50} {'events/s':>9} {'vs base':>8} {'CPU µs/ev':>10} {'vs base':>8} {'target':>8}  met"
    print(header)
    for name in results:
        baseline, target = BASELINE.get(name), TARGETS.get(name)
        wall_ratio = rate[name] / rate[baseline] if baseline else None
        cpu_ratio = cpu[baseline] / cpu[name] if baseline else None
        if target is None:
            shown = met = ""
        elif wall_ratio is not None and cpu_ratio is not None:
            shown = f">={target}x"
            met = "yes" if wall_ratio >= target else ("cpu" if cpu_ratio >= target else "NO")
        else:
            shown, met = f">={target:,.0f}", "yes" if rate[name] >= target else "NO"
        wall_text = "" if wall_ratio is None else f"{wall_ratio:.2f}x"
        cpu_text = "" if cpu_ratio is None else f"{cpu_ratio:.2f}x"
        print(f"{name:<50} {rate[name]:>9,.0f} {wall_text:>8} {cpu[name]:>10.1f} {cpu_text:>8} {shown:>8}  {met}")
    rounds_text = {name: " ".join(f"{r:,.0f}" for r, _ in runs) for name, runs in results.items() if len(runs) > 1}
    print("\nwall-clock rates of every round:")
    for name, text in rounds_text.items():
        print(f"  {name:<48} {text}")
    print("met: yes = wall-clock ratio met; cpu = met only on CPU cost per event (the machine was busy)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--bootstrap", default=os.environ.get("TEST_KAFKA_BOOTSTRAP", "127.0.0.1:59092"))
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--outbox-events", type=int, default=20_000)
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"), help="PostgreSQL server")
    arguments = parser.parse_args()
    asyncio.run(
        main(arguments.bootstrap, arguments.events, arguments.rounds, arguments.outbox_events, arguments.database_url)
    )
