"""The broker down while events are published: nothing lost, every outbox row sent, each event taking effect once.

A Tansu broker of the test's own is killed (SIGKILL) and kept down for ``PLEXICA_FAULT_OUTAGE_SECONDS``
while ``PLEXICA_FAULT_EVENTS`` events are written in transactions (the issue's full-size run: 10,000
events, 30 s); HTTP writes meanwhile still answer 201. Once it is back the outbox drains: every
row of ``core.outbox`` is marked sent, every event reached its handler at least once and took
effect exactly once (``Host.mark_processed``).

Two brokers: one on memory storage (a restart loses topics and offsets, harsher than Kafka), and
one on S3 storage, which keeps its topics across the restart. The second settles the attack
report's "one row marked sent whose event never reached the topic": every event whose row is
marked sent, before the outage or after it, is read back from its topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer

from plexica.events.envelope import decode
from plexica.events.models import core_outbox
from plexica.platform import Platform
from plexica.tenancy.service import tenant_context_of
from plexica_sdk import Host
from plexica_sdk.types import Event
from tests.faults.support import EVENTS, OUTAGE_SECONDS, own_tansu, report, running_host
from tests.fixtures.services import S3Config
from tests.plexica.db.support import fresh_postgres_database
from tests.plexica.events.conftest import FAST_CONSUMER, eventually
from tests.plexica.events.outbox_support import ShopPlugin, count_rows, effects_table

pytestmark = [pytest.mark.anyio, pytest.mark.faults, pytest.mark.kafka]

BATCH = 10  # events per transaction
WRITERS = 4
#: Events sent (and consumed) before the outage. None on memory storage: a restart there loses the log
#: and numbers the new one from offset 0 again, so a consumer already at offset N would skip the new
#: log's first N records, which a real broker's restart never does (its offsets only grow).
PRIOR = {"memory": 0, "s3": 50}


@contextlib.asynccontextmanager
async def s3_storage(s3: S3Config) -> AsyncIterator[dict[str, Any]]:
    """A bucket of the test's own on the shared S3 server, and the broker options that store there."""
    client = boto3.client(
        "s3",
        endpoint_url=s3.endpoint,
        aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key,
        region_name=s3.region,
    )
    bucket = f"tansu-{uuid.uuid4().hex[:12]}"
    await asyncio.to_thread(client.create_bucket, Bucket=bucket)
    env = {
        "AWS_ENDPOINT": s3.endpoint,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "AWS_DEFAULT_REGION": s3.region,
        "AWS_ALLOW_HTTP": "true",
    }
    try:
        yield {"storage": f"s3://{bucket}/", "env": env}
    finally:

        def remove() -> None:
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
            client.delete_bucket(Bucket=bucket)

        await asyncio.to_thread(remove)


async def write(shop: ShopPlugin, host: Host, writer: int, first: int, count: int) -> list[Event]:
    """``count`` events from ``first`` on, ``BATCH`` per transaction, on keys of this ``writer`` only (ordered)."""
    written: list[Event] = []
    for start in range(first, first + count, BATCH):
        async with host.session() as session:
            for n in range(start, min(start + BATCH, first + count)):
                key = f"w{writer}-k{n % 4}"
                written.append(await host.publish(shop.event_type, {"n": n, "key": key}, subject=key, session=session))
    return written


async def unsent(platform: Platform, ids: set[str]) -> int:
    async with platform.db.core_connection() as conn:
        rows = (await conn.execute(sa.select(core_outbox.c.event_id, core_outbox.c.sent_at))).all()
    mine = [row for row in rows if row.event_id in ids]
    assert len(mine) == len(ids), "one outbox row per event"
    return sum(1 for row in mine if row.sent_at is None)


async def on_topic(bootstrap: str, topic: str, expected: int) -> list[str]:
    """The event ids on ``topic``, read from its beginning."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    found: list[str] = []
    try:
        deadline = time.monotonic() + 20
        while len(found) < expected and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found.extend(decode(record.value, record.headers).id for record in records)
    finally:
        await consumer.stop()
    return found


@pytest.mark.parametrize("storage", ["memory", pytest.param("s3", marks=pytest.mark.s3)])
async def test_broker_down_while_events_are_published_loses_none_and_each_takes_effect_once(
    storage: str, postgres_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    shop = ShopPlugin(tmp_path / "shop-migrations")
    async with contextlib.AsyncExitStack() as stack:
        options: dict[str, Any] = {}
        if storage == "s3":
            options = await stack.enter_async_context(s3_storage(request.getfixturevalue("s3_config")))
        broker = await stack.enter_async_context(own_tansu(tmp_path, **options))
        url = await stack.enter_async_context(fresh_postgres_database(postgres_url))
        events = {
            "backend": "kafka",
            "bootstrap_servers": broker.bootstrap,
            "replication_factor": 1,
            "enable_idempotence": False,  # Tansu lacks aiokafka's idempotent producer
            "retry_backoff_seconds": 0.01,
            "kafka": {**FAST_CONSUMER, "io_timeout_seconds": 3.0},
            "outbox": {"poll_seconds": 0.05},
        }
        running = await stack.enter_async_context(
            running_host(tmp_path / "data", [shop], database={"url": url}, events=events)
        )
        platform = running.platform
        tenant = await platform.tenants.provision("acme")
        host = platform.host_for("shop", tenant_context_of(tenant))
        headers = {"Authorization": f"Bearer {running.token_for('alice', ['notes-editor'], 'acme')}"}

        before = await write(shop, host, 0, 0, PRIOR[storage])  # sent and marked before the broker goes
        await eventually(lambda: len(shop.handled) == len(before), timeout=30, what="the events before the outage")
        await platform.relay.drain()

        await broker.stop()  # SIGKILL
        down = time.monotonic()
        written = [
            event
            for batch in await asyncio.gather(
                *(write(shop, host, i, 100 + i * (EVENTS // WRITERS), EVENTS // WRITERS) for i in range(WRITERS))
            )
            for event in batch
        ]
        writing = time.monotonic() - down
        note = await running.client.post("/api/plugins/notes/notes", json={"title": "during"}, headers=headers)
        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down)))
        assert not shop.handled.keys() - {event.id for event in before}, "nothing can arrive while the broker is down"
        waiting = await unsent(platform, {event.id for event in written})

        await broker.start()
        back = time.monotonic()
        everything = before + written
        await eventually(lambda: len(shop.handled) == len(everything), timeout=120, what="every event")
        delivered = time.monotonic() - back
        await platform.relay.drain(timeout=60)
        left = await unsent(platform, {event.id for event in everything})
        effects = await count_rows(host, effects_table)
        async with host.session() as session:
            distinct = await session.scalar(sa.select(sa.func.count(sa.distinct(effects_table.c.event_id))))
        topic = platform.bus.topics.topic_for(shop.event_type, "acme")
        seen = await on_topic(broker.bootstrap, topic, len(everything)) if storage == "s3" else []

    report(
        f"broker-outage-{storage}",
        events=len(written),
        outage_seconds=round(back - down, 1),
        writing_seconds=round(writing, 2),
        rows_waiting_during_outage=waiting,
        seconds_to_deliver_after_restart=round(delivered, 2),
        deliveries=sum(shop.received.values()),
        lost=len({e.id for e in everything} - set(shop.handled)),
    )
    assert note.status_code == 201, "a broker outage never fails the caller's request"
    assert waiting == len(written) and left == 0
    assert set(shop.handled) == {event.id for event in everything}
    assert set(shop.handled.values()) == {1} and effects == distinct == len(everything)  # once in effect
    assert sum(shop.received.values()) >= len(everything)  # at least once
    for key, order in shop.order.items():
        assert order == sorted(order), f"events of {key} out of order"
    if storage == "s3":  # a broker that keeps its topics: every row marked sent is on the topic
        assert set(seen) == {event.id for event in everything}
