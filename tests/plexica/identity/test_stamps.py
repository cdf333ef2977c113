"""Generation-stamped cache entries: an invalidation is never undone by a refill that raced it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from plexica.cache import ManagedCache, MemoryCache, RedisCache
from plexica.identity.stamps import StampedCache
from plexica_sdk.errors import BackendUnavailableError

pytestmark = pytest.mark.anyio


class DownCache:
    """A cache whose every call fails as Redis does when it is unreachable."""

    async def get(self, key: str) -> bytes | None:
        raise BackendUnavailableError("redis", "down")

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        raise BackendUnavailableError("redis", "down")

    async def delete(self, *keys: str) -> int:
        raise BackendUnavailableError("redis", "down")

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        raise BackendUnavailableError("redis", "down")

    async def delete_prefix(self, prefix: str) -> int:
        raise BackendUnavailableError("redis", "down")


@pytest.fixture(
    params=[pytest.param("memory", id="memory"), pytest.param("redis", id="redis", marks=pytest.mark.redis)]
)
async def cache(request: pytest.FixtureRequest, anyio_backend: str) -> AsyncIterator[ManagedCache]:
    backend: ManagedCache = (
        MemoryCache() if request.param == "memory" else RedisCache(request.getfixturevalue("redis_url"))
    )
    async with backend:
        yield backend


@pytest.fixture
async def ns(cache: ManagedCache) -> AsyncIterator[str]:
    prefix = f"test:{uuid.uuid4().hex}:"
    yield prefix
    await cache.delete_prefix(prefix)


async def test_a_written_entry_is_read_back_until_invalidated(cache: ManagedCache, ns: str) -> None:
    stamps = StampedCache(cache, ttl=60)
    miss = await stamps.read(f"{ns}k", f"{ns}k:gen")
    assert (miss.value, miss.generation) == (None, 0)
    await stamps.write(f"{ns}k", miss.generation, b"active")
    assert (await stamps.read(f"{ns}k", f"{ns}k:gen")).value == b"active"
    await stamps.invalidate(f"{ns}k:gen", f"{ns}k")
    after = await stamps.read(f"{ns}k", f"{ns}k:gen")
    assert (after.value, after.generation) == (None, 1)


async def test_a_refill_read_before_an_invalidation_never_matches_again(cache: ManagedCache, ns: str) -> None:
    stamps = StampedCache(cache, ttl=60)
    before = await stamps.read(f"{ns}k", f"{ns}k:gen")  # a request misses and goes to the database...
    await stamps.invalidate(f"{ns}k:gen", f"{ns}k")  # ...meanwhile the user is removed...
    await stamps.write(f"{ns}k", before.generation, b"active")  # ...and the stale answer lands after.
    assert (await stamps.read(f"{ns}k", f"{ns}k:gen")).value is None


async def test_entries_under_a_prefix_go_with_it(cache: ManagedCache, ns: str) -> None:
    stamps = StampedCache(cache, ttl=60)
    await stamps.write(f"{ns}ws:1:alice", 0, b"admin")
    await stamps.write(f"{ns}ws:1:bob", 0, b"member")
    await stamps.invalidate(f"{ns}ws:1:gen", prefix=f"{ns}ws:1:")
    assert await cache.get(f"{ns}ws:1:alice") is None and await cache.get(f"{ns}ws:1:bob") is None


async def test_an_unavailable_cache_reads_as_a_miss_and_skips_writes() -> None:
    stamps = StampedCache(DownCache(), ttl=60)
    found = await stamps.read("k", "k:gen")
    assert (found.value, found.generation) == (None, None)
    await stamps.write("k", found.generation, b"x")
    await stamps.write("k", 3, b"x")  # logged, not raised
    await stamps.invalidate("k:gen", "k")  # logged, not raised
