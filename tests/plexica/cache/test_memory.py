"""What only the in-process cache does: LRU bounds and a clock the tests can move."""

from __future__ import annotations

import pytest

from plexica.cache import MemoryCache
from plexica_sdk.errors import ValidationError

pytestmark = pytest.mark.anyio


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_least_recently_used_key_is_evicted_at_the_bound() -> None:
    cache = MemoryCache(max_entries=3)
    for key in ("a", "b", "c"):
        await cache.set(key, b"v")
    await cache.get("a")  # "a" is now more recent than "b"

    await cache.set("d", b"v")

    assert len(cache) == 3
    assert await cache.get("b") is None
    assert [await cache.get(key) for key in ("a", "c", "d")] == [b"v", b"v", b"v"]


async def test_incr_refreshes_recency_and_counts_against_the_bound() -> None:
    cache = MemoryCache(max_entries=2)
    await cache.incr("hits")
    await cache.set("x", b"v")
    await cache.incr("hits")

    await cache.set("y", b"v")

    assert await cache.get("x") is None
    assert await cache.get("hits") == b"2"


async def test_expiry_follows_the_monotonic_clock() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock=clock)
    await cache.set("k", b"v", ttl=10)

    clock.now += 9.99
    assert await cache.get("k") == b"v"
    clock.now += 0.01
    assert await cache.get("k") is None
    assert len(cache) == 0


async def test_default_ttl_applies_when_none_is_given() -> None:
    clock = FakeClock()
    cache = MemoryCache(default_ttl=5, clock=clock)
    await cache.set("k", b"v")
    await cache.incr("n")
    await cache.set("longer", b"v", ttl=60)

    clock.now += 5

    assert await cache.get("k") is None
    assert await cache.get("n") is None
    assert await cache.get("longer") == b"v"


async def test_expired_keys_are_neither_deleted_nor_counted() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock=clock)
    await cache.set("p:old", b"v", ttl=1)
    await cache.set("p:new", b"v")
    clock.now += 2

    assert await cache.delete("p:old") == 0
    await cache.set("p:old2", b"v", ttl=1)
    clock.now += 2
    assert await cache.delete_prefix("p:") == 1
    assert len(cache) == 0


async def test_leaving_the_context_empties_the_cache() -> None:
    async with MemoryCache() as cache:
        await cache.set("k", b"v")

    assert len(cache) == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"max_entries": 0}, "max_entries"), ({"default_ttl": 0}, "ttl")],
    ids=["no-room", "zero-default-ttl"],
)
def test_invalid_configuration_is_rejected(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        MemoryCache(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field
