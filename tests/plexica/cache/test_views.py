"""The views the host builds on a cache: per-namespace prefixes and the per-request L1."""

from __future__ import annotations

import pytest

from plexica.cache import ManagedCache, MemoryCache, PrefixedCache, RequestCache
from plexica_sdk.errors import ValidationError
from plexica_sdk.protocols import Cache

pytestmark = pytest.mark.anyio


class CountingCache:
    """Wraps a cache and counts the reads that reach it."""

    def __init__(self, inner: Cache) -> None:
        self.inner = inner
        self.gets = 0

    async def get(self, key: str) -> bytes | None:
        self.gets += 1
        return await self.inner.get(key)

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        await self.inner.set(key, value, ttl=ttl)

    async def delete(self, *keys: str) -> int:
        return await self.inner.delete(*keys)

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        return await self.inner.incr(key, amount, ttl=ttl)

    async def delete_prefix(self, prefix: str) -> int:
        return await self.inner.delete_prefix(prefix)


async def test_prefixed_cache_stores_every_key_under_its_prefix(cache: ManagedCache, namespace: str) -> None:
    plugin = PrefixedCache(cache, f"{namespace}tenant:acme:plugin:notes:")

    await plugin.set("k", b"v", ttl=30)
    assert await plugin.incr("n", 2, ttl=30) == 2

    assert await cache.get(f"{namespace}tenant:acme:plugin:notes:k") == b"v"
    assert await plugin.get("k") == b"v"
    assert await plugin.delete("k", "n") == 2
    assert isinstance(plugin, Cache)


async def test_scoped_view_nests_prefixes(cache: ManagedCache, namespace: str) -> None:
    tenant = PrefixedCache(cache, f"{namespace}tenant:acme:")
    notes = tenant.scoped("plugin:notes:")
    await notes.set("k", b"v")
    await tenant.set("roles", b"v")

    assert notes.prefix == f"{namespace}tenant:acme:plugin:notes:"
    assert await notes.delete_prefix("") == 1
    assert await tenant.get("roles") == b"v"


def test_empty_prefix_is_refused() -> None:
    with pytest.raises(ValidationError):
        PrefixedCache(MemoryCache(), "")


async def test_request_cache_reads_each_key_from_the_backend_once(cache: ManagedCache, namespace: str) -> None:
    await cache.set(f"{namespace}roles", b"admin")
    backend = CountingCache(cache)
    request = RequestCache(backend)

    for _ in range(3):
        assert await request.get(f"{namespace}roles") == b"admin"
        assert await request.get(f"{namespace}missing") is None

    assert backend.gets == 2
    assert request.backend is backend


async def test_request_cache_sees_its_own_writes_and_writes_through(cache: ManagedCache, namespace: str) -> None:
    backend = CountingCache(cache)
    request = RequestCache(backend)
    assert await request.get(f"{namespace}k") is None

    await request.set(f"{namespace}k", b"v", ttl=30)
    assert await request.get(f"{namespace}k") == b"v"
    assert await cache.get(f"{namespace}k") == b"v"

    assert await request.incr(f"{namespace}n", ttl=30) == 1
    assert await request.get(f"{namespace}n") == b"1"

    assert await request.delete(f"{namespace}k") == 1
    assert await request.get(f"{namespace}k") is None
    assert backend.gets == 1


async def test_request_cache_delete_prefix_drops_local_copies(cache: ManagedCache, namespace: str) -> None:
    request = RequestCache(cache)
    await request.set(f"{namespace}a:1", b"v")
    await request.set(f"{namespace}b:1", b"v")

    assert await request.delete_prefix(f"{namespace}a:") == 1

    assert await request.get(f"{namespace}a:1") is None
    assert await request.get(f"{namespace}b:1") == b"v"


async def test_request_cache_keeps_a_read_value_for_the_whole_request() -> None:
    shared = MemoryCache()
    await shared.set("perm", b"old")
    request = RequestCache(shared)
    assert await request.get("perm") == b"old"

    await shared.set("perm", b"new")  # another process changes it mid-request

    assert await request.get("perm") == b"old"
    request.clear()
    assert await request.get("perm") == b"new"
