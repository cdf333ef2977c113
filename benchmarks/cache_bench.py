"""The layered cache and the cached tenant lookup, against their baselines in the same run.

Measures:

* an L1 hit of :class:`~plexica.cache.layered.LayeredCache` (target <= 1 us; no baseline);
* an L2 hit (``RedisCache.get``, and a layered read whose L1 entry has expired), paired with a
  raw redis-py ``GET`` of the same key on the same server (target >= 0.9x, i.e. <= 1.1x its time);
* tenant resolution: ``TenantDirectory.get`` warm (L1) and from Redis (L2), paired with the
  per-request registry read (``TenantService.get``, one PostgreSQL query).

Usage::

    set -a; . /tmp/plexica-services/env; set +a
    .venv/bin/python benchmarks/cache_bench.py [--redis URL] [--database URL] [--rounds 7] [--quick]
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import _paired
import attrs
import redis.asyncio as redis_asyncio
from _paired import Figure, paired, per_op, single
from tests.plexica.db.support import make_platform_settings

from plexica.cache import MemoryCache, RedisCache
from plexica.cache.layered import LayeredCache
from plexica.platform import Platform
from plexica.tenancy.directory import TenantDirectory

BENCH = "cache"
Op = Callable[[], Awaitable[object]]


async def against(baseline: tuple[str, Op], subjects: dict[str, Op], rounds: int, count: int) -> list[Figure]:
    """Each subject paired with the same baseline operation, ``count`` calls per side and round."""
    name, op = baseline
    return [
        await paired(BENCH, subject, partial(per_op, call, count), name, partial(per_op, op, count), rounds=rounds)
        for subject, call in subjects.items()
    ]


async def l1(rounds: int, count: int) -> list[Figure]:
    layered = LayeredCache(MemoryCache(), max_age=3600, subscribed_max_age=3600)

    async def load() -> bytes:
        return b"value"

    await layered.get_bytes("tenant:{acme}:config", load)
    figure = await single(
        BENCH,
        "L1 hit (LayeredCache.get_bytes)",
        lambda: per_op(lambda: layered.get_bytes("tenant:{acme}:config", load), count * 100),
        rounds=rounds,
    )
    verdict = "ok" if figure.subject <= 1e-6 else "MISSED"
    return [attrs.evolve(figure, note=f"target <= 1 us: {verdict}")]


async def l2(redis_url: str, rounds: int, count: int) -> list[Figure]:
    key = f"bench:{uuid.uuid4().hex}"
    raw = redis_asyncio.Redis.from_url(redis_url)
    async with RedisCache(redis_url) as cache:
        await cache.set(key, b"x" * 200, ttl=600)
        layered = LayeredCache(cache, max_age=1e-9, subscribed_max_age=1e-9)  # every read misses L1

        async def never() -> bytes:
            raise AssertionError("the key is at L2")

        direct, through = await against(
            ("raw redis-py GET", lambda: raw.get(key)),
            {
                "L2 hit (RedisCache.get)": lambda: cache.get(key),
                "L2 hit via LayeredCache (L1 expired)": lambda: layered.get_bytes(key, never),
            },
            rounds,
            count,
        )
        await cache.delete(key)
    await raw.aclose()
    verdict = "ok" if (direct.ratio or 0) >= 1 / 1.1 else "MISSED"
    return [attrs.evolve(direct, note=f"target >= 0.91x: {verdict}"), through]


async def tenants(database_url: str, redis_url: str, rounds: int, count: int) -> list[Figure]:
    slug = f"bench{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as data_dir:
        settings = make_platform_settings(Path(data_dir), database_url)
        settings = attrs.evolve(settings, cache=attrs.evolve(settings.cache, redis_url=redis_url))
        async with Platform(settings) as platform:
            await platform.tenants.provision(slug)
            try:
                cold = LayeredCache(platform.cache, max_age=1e-9, subscribed_max_age=1e-9)
                via_l2 = TenantDirectory(cold, platform.db)
                await platform.directory.get(slug)

                figures = await against(
                    ("TenantService.get (registry read)", lambda: platform.tenants.get(slug)),
                    {
                        "TenantDirectory.get from Redis (L2)": lambda: via_l2.get(slug),
                        "TenantDirectory.get warm (L1)": lambda: platform.directory.get(slug),
                    },
                    rounds,
                    count,
                )
            finally:
                await platform.tenants.delete(slug)
    return figures


async def run(argv: list[str]) -> int:
    parser = _paired.parser(__doc__)
    parser.add_argument("--redis", default=os.environ.get("TEST_REDIS_URL"))
    parser.add_argument("--database", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument("--count", type=int, default=2_000, help="calls per round (--quick: 200)")
    parser.add_argument("--no-services", action="store_true", help="only the in-process L1 figure")
    args = parser.parse_args(argv)
    rounds = _paired.rounds_for(args)
    count = 200 if args.quick else args.count
    figures = await l1(rounds, count)
    if not args.no_services:
        if not args.redis or not args.database:
            print("needs TEST_REDIS_URL and TEST_DATABASE_URL (scripts/services.sh up), or --no-services")
            return 2
        figures += await l2(args.redis, rounds, count)
        figures += await tenants(args.database, args.redis, rounds, count // 2)
    return _paired.finish(figures)  # a missed target is a figure to report, not a failed run


if __name__ == "__main__":
    sys.exit(asyncio.run(run(sys.argv[1:])))
