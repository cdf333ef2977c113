"""The fallback view of the shared cache, against a Redis of the test's own: killed, frozen or cut off.

A killed Redis refuses at once; a frozen one (SIGSTOP) answers nothing until the socket timeout;
behind a cut proxy (:class:`Partition`) it keeps its data while this process cannot reach it: there,
an invalidation that failed must be replayed before anything is read again, or a stale entry would
come back with the connection. (A frozen Redis cannot show that: it runs the timed-out commands
queued in its socket once thawed.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plexica.cache import MemoryCache, RedisCache
from plexica.cache.fallback import BroadcastingFallbackCache, FallbackCache, fallback_for
from plexica.cache.layered import InvalidationChannel, LayeredCache
from tests.e2e.private_services import PrivateRedis, free_port, own_redis

pytestmark = pytest.mark.anyio

TIMEOUT = 0.2  # the raw cache's socket timeout: a frozen Redis costs this much per attempt


@pytest.fixture
async def redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    async with own_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
async def raw(redis: PrivateRedis) -> AsyncIterator[RedisCache]:
    async with RedisCache(redis.url, socket_timeout=TIMEOUT) as cache:
        yield cache


def test_only_a_broadcasting_backend_gets_a_broadcasting_view() -> None:
    assert type(fallback_for(MemoryCache())) is FallbackCache
    assert not isinstance(fallback_for(MemoryCache()), InvalidationChannel)
    redis = fallback_for(RedisCache("redis://127.0.0.1:1/0"))  # connects nothing
    assert isinstance(redis, BroadcastingFallbackCache) and isinstance(redis, InvalidationChannel)


async def test_a_killed_redis_is_a_miss_and_skipped_writes_then_caching_resumes(
    redis: PrivateRedis, raw: RedisCache, caplog: pytest.LogCaptureFixture
) -> None:
    cache = fallback_for(raw, retry_seconds=0.05)
    await cache.set("k", b"v")
    assert await cache.get("k") == b"v"
    states = [cache.available]

    await redis.stop()
    with caplog.at_level(logging.WARNING, logger="plexica.cache.fallback"):
        assert await cache.get("k") is None
        assert await cache.get_many(["k", "other"]) == [None, None]
        await cache.set("k", b"new")  # skipped, not raised
        for _ in range(20):
            await cache.get("k")
    states.append(cache.available)
    assert cache.fallbacks >= 23
    warnings = [r for r in caplog.records if r.name == "plexica.cache.fallback"]
    assert len(warnings) == 1 and "serving from the database" in warnings[0].getMessage()
    assert "redis://" not in caplog.text  # the URL may hold a password

    await redis.start()  # the same port, empty (no persistence): the pool reconnects
    await asyncio.sleep(0.06)
    await cache.set("k", b"again")
    assert await cache.get("k") == b"again"
    states.append(cache.available)
    assert states == [True, False, True]


class Partition:
    """A TCP proxy in front of Redis that can be cut: Redis keeps its data, this client cannot reach it."""

    def __init__(self, port: int) -> None:
        self.port, self.target = free_port(), port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self._writers |= {writer, upstream_writer}
        await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))

    async def heal(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        self._writers.clear()
        await self._server.wait_closed()


async def test_invalidations_that_fail_are_replayed_before_the_next_read(redis: PrivateRedis, raw: RedisCache) -> None:
    partition = Partition(redis.port)
    await partition.heal()
    async with RedisCache(partition.url, socket_timeout=TIMEOUT) as behind:
        cache = fallback_for(behind, retry_seconds=0.05)
        await raw.set("tenant:{acme}:entry", b"granted")
        await raw.set("tenant:{acme}:other", b"granted")
        await raw.set("tenant:{acme}:ws:1", b"member")
        await raw.set("counter", b"10")
        assert await cache.get("counter") == b"10"

        await partition.cut()  # Redis keeps its data; this process cannot reach it
        assert await cache.delete("tenant:{acme}:entry", "tenant:{acme}:other") == 0
        assert await cache.delete_prefix("tenant:{acme}:ws:") == 0
        stand_in = await cache.incr("counter", 5)
        assert stand_in not in (10, 15) and stand_in > 0  # a fresh opaque version, never an old one
        assert await cache.get("tenant:{acme}:entry") is None
        assert await raw.get("tenant:{acme}:entry") == b"granted"  # still there: the deletion is owed

        await partition.heal()
        await asyncio.sleep(0.06)
        assert await cache.get("tenant:{acme}:entry") is None  # replayed first, then read
        assert cache.available
    await partition.cut()
    assert await raw.get_many(["tenant:{acme}:entry", "tenant:{acme}:other", "tenant:{acme}:ws:1"]) == [None] * 3
    assert await raw.get("counter") == b"15"  # the owed bump, applied once


async def test_a_frozen_redis_costs_one_probe_per_interval_not_a_timeout_per_call(
    redis: PrivateRedis, raw: RedisCache
) -> None:
    cache = fallback_for(raw, retry_seconds=0.5)
    await cache.set("k", b"v")
    redis.freeze()
    try:
        started = time.perf_counter()
        assert await cache.get("k") is None  # this one waits for the socket timeout
        first = time.perf_counter() - started
        started = time.perf_counter()
        results = await asyncio.gather(*(cache.get("k") for _ in range(200)))
        rest = time.perf_counter() - started
    finally:
        redis.thaw()
    assert first >= TIMEOUT * 0.9 and results == [None] * 200
    assert rest < TIMEOUT, f"200 reads while skipped took {rest:.3f} s"
    await asyncio.sleep(0.5)
    assert await cache.get("k") == b"v"


async def test_a_broadcast_that_fails_is_replayed_to_the_other_processes(redis: PrivateRedis, raw: RedisCache) -> None:
    partition = Partition(redis.port)
    await partition.heal()
    received: list[bytes] = []
    subscribed, arrived = asyncio.Event(), asyncio.Event()

    async def listen() -> None:  # another process, which still reaches Redis
        async for message in raw.listen("plexica:test", subscribed.set):
            received.append(message)
            arrived.set()

    listener = asyncio.create_task(listen())
    try:
        async with RedisCache(partition.url, socket_timeout=TIMEOUT) as behind:
            sender = fallback_for(behind, retry_seconds=0.05)
            assert isinstance(sender, BroadcastingFallbackCache)
            await asyncio.wait_for(subscribed.wait(), 5)
            await partition.cut()
            await sender.publish("plexica:test", b"tenant:{acme}:config")  # owed, not raised
            await asyncio.sleep(0.1)
            assert received == []
            await partition.heal()
            await asyncio.sleep(0.06)
            await sender.get("anything")  # the next operation settles what is owed
            await asyncio.wait_for(arrived.wait(), 5)
        await partition.cut()
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
    assert received == [b"tenant:{acme}:config"]


async def test_the_layered_cache_serves_from_the_loader_while_redis_is_down(
    redis: PrivateRedis, raw: RedisCache
) -> None:
    layered = LayeredCache(fallback_for(raw, retry_seconds=0.05), max_age=0.01)
    loads = 0

    async def load() -> bytes:
        nonlocal loads
        loads += 1
        return b"from the database"

    await redis.stop()
    async with layered:  # the invalidation channel cannot subscribe: the short bound applies
        for _ in range(3):
            assert await layered.get_bytes("tenant:{acme}:config", load) == b"from the database"
            await asyncio.sleep(0.02)  # past max_age: every read reaches the loader
        await layered.invalidate("tenant:{acme}:config")  # owed, not raised
        await layered.invalidate_local("tenant:{acme}:local")
    assert loads == 3 and not layered.subscribed
