"""``create_cache`` picks the backend from the settings and connects nothing."""

from __future__ import annotations

import uuid

import pytest

from plexica.cache import ManagedCache, MemoryCache, RedisCache, create_cache
from plexica.settings import CacheSettings

pytestmark = pytest.mark.anyio


async def test_default_settings_give_the_in_process_cache_with_the_default_ttl() -> None:
    async with create_cache(CacheSettings(ttl_seconds=1)) as cache:
        assert isinstance(cache, MemoryCache)
        assert isinstance(cache, ManagedCache)
        await cache.set("k", b"v")
        assert await cache.get("k") == b"v"


def test_a_redis_url_gives_redis_without_connecting() -> None:
    cache = create_cache(CacheSettings(redis_url="redis://127.0.0.1:1/0"))

    assert isinstance(cache, RedisCache)


@pytest.mark.redis
async def test_redis_from_settings_applies_the_default_ttl(redis_url: str) -> None:
    key = f"test:{uuid.uuid4().hex}"
    async with create_cache(CacheSettings(redis_url=redis_url, ttl_seconds=60)) as cache:
        await cache.set(key, b"v")
        assert isinstance(cache, RedisCache)
        ttl_ms = await cache._open().pttl(key)  # the Protocol has no ttl read, so ask Redis itself
        await cache.delete(key)
    assert 0 < ttl_ms <= 60_000
