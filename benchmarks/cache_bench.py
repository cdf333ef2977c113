"""The layered cache and the cached tenant lookup, against their baselines in the same run.

Measures:

* an L1 hit of :class:`~plexica.cache.layered.LayeredCache` (target <= 1 us);
* an L2 hit (``RedisCache.get``, and a layered read whose L1 entry has expired) against a raw
  redis-py ``GET`` of the same key on the same server, rounds interleaved (target <= 1.1x);
* tenant resolution: ``TenantDirectory.get`` warm (L1), from Redis (L2), against today's
  per-request registry read (``TenantService.get``, one PostgreSQL query).

Usage::

    set -a; . /tmp/plexica-services/env; set +a
    .venv/bin/python benchmarks/cache_bench.py [--redis URL] [--database URL] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable

import redis.asyncio as redis_asyncio

from plexica.cache import MemoryCache, RedisCache
from plexica.cache.layered import LayeredCache
from plexica.platform import Platform
from plexica.settings import load_settings
from plexica.tenancy.directory import TenantDirectory

Op = Callable[[], Awaitable[object]]


async def per_op(op: Op, count: int) -> float:
    """Seconds per call of ``op``, over ``count`` sequential calls."""
    started = time.perf_counter()
    for _ in range(count):
        await op()
    return (time.perf_counter() - started) / count


async def interleaved(ops: dict[str, Op], count: int, rounds: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds per call of each op, and the median of its per-round ratio to the first op.

    The ops take turns each round, in a rotating order, so load drifts on a shared machine hit
    all alike; a ratio is taken within each round, where they ran seconds apart.
    """
    for op in ops.values():  # warm-up
        await per_op(op, max(1, count // 10))
    names = list(ops)
    samples: dict[str, list[float]] = {name: [] for name in ops}
    for index in range(rounds):
        for name in names[index % len(names) :] + names[: index % len(names)]:
            samples[name].append(await per_op(ops[name], count))
    base = samples[names[0]]
    ratios = {
        name: statistics.median(v / b for v, b in zip(values, base, strict=True)) for name, values in samples.items()
    }
    return {name: statistics.median(values) for name, values in samples.items()}, ratios


def row(name: str, seconds: float, ratio: float | None = None, target: str = "") -> str:
    shown = f"{ratio:6.2f}x" if ratio is not None else "       "
    return f"  {name:<46} {seconds * 1e6:10.2f} us  {shown}  {target}"


async def l1(rounds: int) -> list[str]:
    layered = LayeredCache(MemoryCache(), max_age=3600, subscribed_max_age=3600)

    async def load() -> bytes:
        return b"value"

    await layered.get_bytes("tenant:{acme}:config", load)
    times, _ = await interleaved({"l1": lambda: layered.get_bytes("tenant:{acme}:config", load)}, 200_000, rounds)
    ok = "ok" if times["l1"] <= 1e-6 else "MISSED"
    return [row("L1 hit (LayeredCache.get_bytes)", times["l1"], target=f"target <= 1 us: {ok}")]


async def l2(redis_url: str, rounds: int) -> list[str]:
    key = f"bench:{uuid.uuid4().hex}"
    raw = redis_asyncio.Redis.from_url(redis_url)
    async with RedisCache(redis_url) as cache:
        await cache.set(key, b"x" * 200, ttl=600)
        layered = LayeredCache(cache, max_age=1e-9, subscribed_max_age=1e-9)  # every read misses L1

        async def never() -> bytes:
            raise AssertionError("the key is at L2")

        times, ratios = await interleaved(
            {
                "raw": lambda: raw.get(key),
                "l2": lambda: cache.get(key),
                "layered": lambda: layered.get_bytes(key, never),
            },
            2_000,
            3 * rounds,
        )
        await cache.delete(key)
    await raw.aclose()
    verdict = "ok" if ratios["l2"] <= 1.1 else "MISSED"
    return [
        row("raw redis-py GET (baseline)", times["raw"], 1.0),
        row("L2 hit (RedisCache.get)", times["l2"], ratios["l2"], f"target <= 1.1x: {verdict}"),
        row("L2 hit through LayeredCache (L1 expired)", times["layered"], ratios["layered"]),
    ]


async def tenants(database_url: str, redis_url: str, rounds: int) -> list[str]:
    slug = f"bench{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as data_dir:
        settings = load_settings(
            environ={},
            environment="test",
            load_entry_points=False,
            data_dir=data_dir,
            database={"url": database_url},
            cache={"redis_url": redis_url},
        )
        async with Platform(settings) as platform:
            await platform.tenants.provision(slug)
            try:
                cold = LayeredCache(platform.cache, max_age=1e-9, subscribed_max_age=1e-9)
                via_l2 = TenantDirectory(cold, platform.db)
                await platform.directory.get(slug)
                times, ratios = await interleaved(
                    {
                        "registry": lambda: platform.tenants.get(slug),
                        "l2": lambda: via_l2.get(slug),
                        "warm": lambda: platform.directory.get(slug),
                    },
                    1_000,
                    rounds,
                )
            finally:
                await platform.tenants.delete(slug)
    return [
        row("registry read per request (TenantService.get)", times["registry"], 1.0),
        row("TenantDirectory.get from Redis (L2)", times["l2"], ratios["l2"]),
        row("TenantDirectory.get warm (L1)", times["warm"], ratios["warm"]),
    ]


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default=os.environ.get("TEST_REDIS_URL"))
    parser.add_argument("--database", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    if not args.redis or not args.database:
        print("needs TEST_REDIS_URL and TEST_DATABASE_URL (scripts/services.sh up)", file=sys.stderr)
        return 2
    lines = ["  {:<46} {:>13}  {:>7}".format("operation", "per call", "vs base (median of per-round ratios)")]
    lines += await l1(args.rounds)
    lines += await l2(args.redis, args.rounds)
    lines += await tenants(args.database, args.redis, args.rounds)
    print("\n".join(lines))
    return 1 if any("MISSED" in line for line in lines) else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
