"""RedisCache on a real 3-master Redis Cluster: hash-tagged tenant keys, flushes across masters."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio.cluster import RedisCluster

from plexica.cache import RedisCache, create_cache
from plexica.cache.layered import LayeredCache
from plexica.settings import CacheSettings
from plexica.tenancy.naming import cache_prefix

pytestmark = [pytest.mark.anyio, pytest.mark.redis_cluster]


@pytest.fixture
async def cluster(redis_cluster_url: str) -> AsyncIterator[RedisCache]:
    async with RedisCache(redis_cluster_url) as cache:
        yield cache


@pytest.fixture
async def raw(redis_cluster_url: str) -> AsyncIterator[RedisCluster]:
    client = RedisCluster.from_url(redis_cluster_url.replace("redis+cluster://", "redis://"))
    await client.initialize()
    try:
        yield client
    finally:
        await client.aclose()


def node_of(raw: RedisCluster, key: str) -> str:
    node = raw.get_node_from_key(key)
    assert node is not None
    return node.name


def slugs(count: int) -> list[str]:
    return [f"t{uuid.uuid4().hex[:10]}" for _ in range(count)]


async def test_the_url_scheme_or_the_setting_selects_a_cluster(redis_cluster_url: str) -> None:
    assert RedisCache(redis_cluster_url).is_cluster
    plain = redis_cluster_url.replace("redis+cluster://", "redis://")
    assert not RedisCache(plain).is_cluster
    built = create_cache(CacheSettings(redis_url=plain, redis_cluster=True))
    assert isinstance(built, RedisCache) and built.is_cluster
    async with built:
        await built.set("test:probe", b"1", ttl=5)
        assert await built.get("test:probe") == b"1"


async def test_one_tenant_keys_share_a_slot_and_tenants_spread_over_the_masters(raw: RedisCluster) -> None:
    tenants = slugs(12)
    nodes = set()
    for slug in tenants:
        keys = [f"{cache_prefix(slug)}{suffix}" for suffix in ("config", "permissions:ann", "plugin:notes:config")]
        slots = {await raw.cluster_keyslot(key) for key in keys}  # asked of the server
        assert len(slots) == 1, keys
        nodes.add(node_of(raw, keys[0]))
    assert len(nodes) > 1  # 12 random tenants on one master out of 3 would be a 1-in-3^11 fluke


async def test_a_tenant_flush_empties_that_tenant_on_its_master_and_nothing_else(
    cluster: RedisCache, raw: RedisCluster
) -> None:
    tenants = slugs(6)
    for slug in tenants:
        for index in range(20):
            await cluster.set(f"{cache_prefix(slug)}k{index}", b"v", ttl=60)
        await cluster.incr(f"{cache_prefix(slug)}counter", ttl=60)  # MULTI on the tenant's slot
    doomed, *kept = tenants

    assert await cluster.delete_prefix(cache_prefix(doomed)) == 21

    assert await cluster.get(f"{cache_prefix(doomed)}k0") is None
    for slug in kept:
        assert await cluster.get(f"{cache_prefix(slug)}k19") == b"v"
        assert await cluster.get(f"{cache_prefix(slug)}counter") == b"1"
        assert await cluster.delete_prefix(cache_prefix(slug)) == 21


async def test_a_prefix_spanning_every_master_is_deleted_on_every_master(
    cluster: RedisCache, raw: RedisCluster
) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"  # no hash tag: the keys land on every master
    keys = [f"{prefix}{index}" for index in range(90)]
    for key in keys:
        await cluster.set(key, b"v", ttl=60)
    assert len({node_of(raw, key) for key in keys}) == 3

    assert await cluster.delete_prefix(prefix) == 90
    assert await cluster.delete(*keys) == 0  # a multi-slot UNLINK is split per slot by redis-py


async def test_invalidations_travel_over_cluster_pub_sub(redis_cluster_url: str) -> None:
    key = f"{cache_prefix(slugs(1)[0])}config"
    async with (
        RedisCache(redis_cluster_url) as a_backend,
        RedisCache(redis_cluster_url) as b_backend,
        LayeredCache(a_backend, subscribed_max_age=30) as a,
        LayeredCache(b_backend, subscribed_max_age=30) as b,
    ):
        assert a.subscribed and b.subscribed

        async def first() -> bytes:
            return b"v1"

        async def second() -> bytes:
            return b"v2"

        assert await a.get_bytes(key, first, ttl=60) == b"v1"
        started = time.monotonic()
        await b.invalidate(key)
        while await a.get_bytes(key, second, ttl=60) != b"v2":
            assert time.monotonic() - started < 1.0
            await asyncio.sleep(0.005)
        await a_backend.delete(key)
