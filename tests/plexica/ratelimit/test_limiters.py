"""Both limiter backends keep the same contract: the in-process one, and Redis (one server and a Cluster)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from plexica.cache.memory import MemoryCache
from plexica.cache.redis import RedisCache
from plexica.ratelimit import MemoryRateLimiter, Quota, RateLimiter, RedisRateLimiter, create_rate_limiter
from plexica.ratelimit.policy import KEY_PREFIX

pytestmark = pytest.mark.anyio


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("redis_cluster", marks=pytest.mark.redis_cluster),
    ]
)
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        yield MemoryRateLimiter()
        return
    url = request.getfixturevalue(f"{request.param}_url")
    async with RedisCache(url) as cache:
        yield RedisRateLimiter(cache)


def _keys() -> tuple[str, str, str]:
    tenant = uuid.uuid4().hex
    return (
        f"{KEY_PREFIX}{{{tenant}}}:alice:core.me",
        f"{KEY_PREFIX}{{{tenant}}}:bob:core.me",
        f"{KEY_PREFIX}{{{tenant}}}",
    )


async def test_admits_the_limit_then_refuses_with_a_retry_time(limiter: RateLimiter) -> None:
    key, _, _ = _keys()
    quota = Quota("user", key, 3, 60)
    verdicts = [await limiter.acquire([quota]) for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert [v.states[0].remaining for v in verdicts] == [2, 1, 0, 0]
    assert 19 < verdicts[3].retry_after <= 20  # one request refills every 20 s
    assert verdicts[3].refused_by == "user"
    assert 59 < verdicts[3].states[0].reset_seconds <= 60


async def test_tenant_cap_refuses_a_second_user_and_charges_nothing(limiter: RateLimiter) -> None:
    alice, bob, tenant = _keys()
    cap = Quota("tenant", tenant, 4, 60)
    for _ in range(3):
        assert (await limiter.acquire([Quota("user", alice, 3, 60), cap])).allowed
    assert (await limiter.acquire([Quota("user", bob, 3, 60), cap])).allowed
    refused = await limiter.acquire([Quota("user", bob, 3, 60), cap])
    assert not refused.allowed and refused.refused_by == "tenant"
    assert [s.remaining for s in refused.states] == [2, 0]  # bob's own partition was not charged
    alone = await limiter.acquire([Quota("user", bob, 3, 60)])
    assert alone.states[0].remaining == 1


async def test_a_costly_request_uses_several_units_and_never_more_than_the_limit(limiter: RateLimiter) -> None:
    key, other, _ = _keys()
    assert (await limiter.acquire([Quota("user", key, 10, 60, cost=4)])).states[0].remaining == 6
    huge = await limiter.acquire([Quota("user", other, 3, 60, cost=50)])
    assert huge.allowed and huge.states[0].remaining == 0  # clamped to the whole quota


@pytest.mark.redis
async def test_redis_keys_expire_within_the_window(redis_url: str) -> None:
    key, _, tenant = _keys()
    async with RedisCache(redis_url) as cache:
        await RedisRateLimiter(cache).acquire([Quota("user", key, 100, 60), Quota("tenant", tenant, 1000, 60)])
        client = cache._open()
        ttls = [await client.pttl(key), await client.pttl(tenant)]
    assert 0 < ttls[0] <= 600 and 0 < ttls[1] <= 60  # one request: one interval (0.6 s, 0.06 s)


async def test_memory_limiter_forgets_expired_partitions_beyond_its_size() -> None:
    now = 0
    limiter = MemoryRateLimiter(clock=lambda: now, max_keys=2)
    for name in ("a", "b"):
        await limiter.acquire([Quota("user", name, 1, 60)])
    now = 61_000_000
    await limiter.acquire([Quota("user", "c", 1, 60)])
    assert repr(limiter) == "<MemoryRateLimiter 1 partitions>"


def test_the_backend_follows_the_host_cache() -> None:
    assert isinstance(create_rate_limiter(RedisCache("redis://127.0.0.1:1")), RedisRateLimiter)
    assert isinstance(create_rate_limiter(MemoryCache()), MemoryRateLimiter)
