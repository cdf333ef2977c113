"""The layered cache: L1 bound, L2 fill, single flight, and invalidation across processes' L1s."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest

from plexica.cache import ManagedCache, MemoryCache, RedisCache
from plexica.cache.layered import LayeredCache
from plexica_sdk.errors import ValidationError

pytestmark = pytest.mark.anyio


@attrs.frozen
class Item:
    name: str
    size: int


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_hundred_concurrent_misses_of_a_cold_key_load_once(cache: ManagedCache, namespace: str) -> None:
    layered = LayeredCache(cache)
    loads = 0

    async def load() -> bytes:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.05)  # long enough for every caller to arrive while it runs
        return b"value"

    results = await asyncio.gather(*(layered.get_bytes(namespace + "k", load, ttl=60) for _ in range(100)))

    assert results == [b"value"] * 100
    assert loads == 1
    assert await cache.get(namespace + "k") == b"value"  # filled at L2 too


async def test_a_failing_load_reaches_every_waiter_and_stores_nothing(cache: ManagedCache, namespace: str) -> None:
    layered = LayeredCache(cache)
    calls = 0

    async def load() -> bytes:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise ValidationError("boom")

    results = await asyncio.gather(
        *(layered.get_bytes(namespace + "k", load) for _ in range(10)), return_exceptions=True
    )

    assert calls == 1 and all(isinstance(r, ValidationError) for r in results)
    assert await cache.get(namespace + "k") is None
    assert await layered.get_bytes(namespace + "k", _const(b"ok")) == b"ok"  # the failure was not remembered


async def test_a_cancelled_caller_does_not_fail_the_others_waiting_on_its_load(
    cache: ManagedCache, namespace: str
) -> None:
    layered = LayeredCache(cache)
    gate = asyncio.Event()

    async def load() -> bytes:
        await gate.wait()
        return b"v"

    first = asyncio.create_task(layered.get_bytes(namespace + "k", load))
    second = asyncio.create_task(layered.get_bytes(namespace + "k", load))
    await asyncio.sleep(0.01)
    first.cancel()
    gate.set()

    assert await second == b"v"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_l1_answers_without_l2_until_its_bound_then_reads_l2_again() -> None:
    clock = Clock()
    backend = MemoryCache()
    layered = LayeredCache(backend, max_age=1.0, clock=clock)
    await layered.get_bytes("k", _const(b"one"), ttl=60)
    await backend.set("k", b"two")  # changed behind the layered cache's back

    clock.now += 0.9
    assert await layered.get_bytes("k", _const(b"x")) == b"one"  # L1, within the bound
    clock.now += 0.2
    assert await layered.get_bytes("k", _const(b"x")) == b"two"  # older than 1 s: L2 again


async def test_missing_values_are_remembered_in_l1_only() -> None:
    clock = Clock()
    backend = MemoryCache()
    layered = LayeredCache(backend, max_age=1.0, clock=clock)

    assert await layered.get_bytes("k", _const(None)) is None
    assert await layered.get_bytes("k", _const(b"late")) is None  # L1 remembers "nothing there"
    assert await backend.get("k") is None
    clock.now += 1.5
    assert await layered.get_bytes("k", _const(b"late")) == b"late"


async def test_l1_is_bounded() -> None:
    layered = LayeredCache(MemoryCache(), max_entries=2)
    for key in ("a", "b", "c"):
        await layered.get_bytes(key, _const(key.encode()))
    layered_loads = layered.loads
    await layered.get_bytes("c", _const(b"x"))
    assert layered.loads == layered_loads  # c still in L1

    await layered.backend.delete("a")
    assert await layered.get_bytes("a", _const(b"reloaded")) == b"reloaded"  # a was evicted


async def test_typed_values_travel_as_json_through_the_converter(cache: ManagedCache, namespace: str) -> None:
    layered = LayeredCache(cache)

    async def load() -> Item:
        return Item("notes", 3)

    assert await layered.get(namespace + "item", Item, load) == Item("notes", 3)
    assert await cache.get(namespace + "item") == b'{"name":"notes","size":3}'
    fresh = LayeredCache(cache)  # another process: L2 hit, structured back
    assert await fresh.get(namespace + "item", Item, _never) == Item("notes", 3)


async def test_a_value_of_another_shape_at_l2_is_an_error_and_is_dropped(cache: ManagedCache, namespace: str) -> None:
    await cache.set(namespace + "item", b'{"unexpected":true}')
    layered = LayeredCache(cache, redelete_after=0)

    with pytest.raises(ValidationError):
        await layered.get(namespace + "item", Item, _never)
    assert await cache.get(namespace + "item") is None


async def test_invalidation_voids_a_load_that_started_before_it(cache: ManagedCache, namespace: str) -> None:
    layered = LayeredCache(cache, redelete_after=0)
    gate = asyncio.Event()

    async def old_read() -> bytes:
        await gate.wait()
        return b"old"

    running = asyncio.create_task(layered.get_bytes(namespace + "k", old_read))
    await asyncio.sleep(0.01)
    await layered.invalidate(namespace + "k")  # the change committed while the old read ran
    gate.set()
    assert await running == b"old"

    assert await cache.get(namespace + "k") is None  # the stale read filled neither L2...
    assert await layered.get_bytes(namespace + "k", _const(b"new")) == b"new"  # ...nor L1


@pytest.mark.redis
async def test_an_invalidation_reaches_another_process_l1_through_pub_sub(redis_url: str) -> None:
    key = f"test:{uuid.uuid4().hex}:k"
    async with (
        RedisCache(redis_url) as a_backend,
        RedisCache(redis_url) as b_backend,
        LayeredCache(a_backend, max_age=30, subscribed_max_age=30) as a,
        LayeredCache(b_backend, max_age=30, subscribed_max_age=30) as b,
    ):
        assert a.subscribed and b.subscribed
        assert a.max_age == 30
        assert await a.get_bytes(key, _const(b"v1"), ttl=60) == b"v1"
        await b_backend.set(key, b"v2", ttl=60)
        assert await a.get_bytes(key, _never) == b"v1"  # A's L1, 30 s bound

        started = time.monotonic()
        await b.invalidate(key)
        while await a.get_bytes(key, _const(b"v3"), ttl=60) == b"v1":
            assert time.monotonic() - started < 1.0, "A still serves the old value after 1 s"
            await asyncio.sleep(0.005)
        assert await a.get_bytes(key, _never) == b"v3"
        await a_backend.delete(key)


@pytest.mark.redis
async def test_without_a_subscription_the_short_bound_applies(redis_url: str) -> None:
    async with RedisCache(redis_url) as backend:
        layered = LayeredCache(backend, max_age=0.5, subscribed_max_age=30)  # never entered: not listening
        assert not layered.subscribed
        assert layered.max_age == 0.5


def test_bounds_are_checked() -> None:
    with pytest.raises(ValidationError):
        LayeredCache(MemoryCache(), max_age=2, subscribed_max_age=1)
    with pytest.raises(ValidationError):
        LayeredCache(MemoryCache(), max_entries=0)


def _const(value: bytes | None) -> Callable[[], Awaitable[bytes | None]]:
    async def load() -> bytes | None:
        return value

    return load


async def _never() -> Any:
    raise AssertionError("the loader must not run")
