"""Behaviour every cache backend shares, run on the in-process cache and on Redis."""

from __future__ import annotations

import asyncio

import pytest

from plexica.cache import ManagedCache, PrefixedCache
from plexica_sdk.errors import ValidationError
from plexica_sdk.protocols import Cache

pytestmark = pytest.mark.anyio


async def test_backend_satisfies_the_sdk_protocol(cache: ManagedCache) -> None:
    assert isinstance(cache, Cache)


async def test_set_then_get_returns_the_bytes(cache: ManagedCache, namespace: str) -> None:
    await cache.set(f"{namespace}k", b"\x00value\xff")

    assert await cache.get(f"{namespace}k") == b"\x00value\xff"
    assert await cache.get(f"{namespace}missing") is None


async def test_set_overwrites(cache: ManagedCache, namespace: str) -> None:
    await cache.set(f"{namespace}k", b"one")
    await cache.set(f"{namespace}k", b"two")

    assert await cache.get(f"{namespace}k") == b"two"


async def test_key_expires_after_its_ttl(cache: ManagedCache, namespace: str) -> None:
    await cache.set(f"{namespace}short", b"v", ttl=0.2)
    await cache.set(f"{namespace}long", b"v", ttl=60)

    await asyncio.sleep(0.35)

    assert await cache.get(f"{namespace}short") is None
    assert await cache.get(f"{namespace}long") == b"v"


@pytest.mark.parametrize("ttl", [0, -1, float("inf"), float("nan")], ids=["zero", "negative", "infinite", "nan"])
async def test_invalid_ttl_is_rejected(cache: ManagedCache, namespace: str, ttl: float) -> None:
    with pytest.raises(ValidationError):
        await cache.set(f"{namespace}k", b"v", ttl=ttl)
    with pytest.raises(ValidationError):
        await cache.incr(f"{namespace}n", ttl=ttl)


async def test_delete_counts_only_existing_keys(cache: ManagedCache, namespace: str) -> None:
    await cache.set(f"{namespace}a", b"1")
    await cache.set(f"{namespace}b", b"2")

    assert await cache.delete(f"{namespace}a", f"{namespace}b", f"{namespace}c") == 2
    assert await cache.get(f"{namespace}a") is None
    assert await cache.delete() == 0


async def test_incr_counts_from_zero_and_by_amount(cache: ManagedCache, namespace: str) -> None:
    assert await cache.incr(f"{namespace}n") == 1
    assert await cache.incr(f"{namespace}n", 5) == 6
    assert await cache.incr(f"{namespace}n", -10) == -4
    assert await cache.get(f"{namespace}n") == b"-4"


async def test_incr_ttl_applies_when_the_counter_is_created(cache: ManagedCache, namespace: str) -> None:
    assert await cache.incr(f"{namespace}window", ttl=0.3) == 1
    await asyncio.sleep(0.15)
    # A later ttl does not extend the window: the counter keeps the expiry it was created with.
    assert await cache.incr(f"{namespace}window", ttl=60) == 2

    await asyncio.sleep(0.3)

    assert await cache.get(f"{namespace}window") is None
    assert await cache.incr(f"{namespace}window", ttl=60) == 1


async def test_incr_on_a_set_integer_continues_from_it(cache: ManagedCache, namespace: str) -> None:
    await cache.set(f"{namespace}n", b"41")

    assert await cache.incr(f"{namespace}n", ttl=10) == 42


@pytest.mark.parametrize("stored", [b"abc", b"1.5", b" 1", b"99999999999999999999"], ids=str)
async def test_incr_on_a_non_integer_is_a_validation_error(cache: ManagedCache, namespace: str, stored: bytes) -> None:
    await cache.set(f"{namespace}n", stored)

    with pytest.raises(ValidationError):
        await cache.incr(f"{namespace}n")
    assert await cache.get(f"{namespace}n") == stored


async def test_incr_overflow_is_a_validation_error(cache: ManagedCache, namespace: str) -> None:
    await cache.set(f"{namespace}n", str(2**63 - 1).encode())

    with pytest.raises(ValidationError):
        await cache.incr(f"{namespace}n")


async def test_concurrent_incr_loses_no_update(cache: ManagedCache, namespace: str) -> None:
    async with asyncio.TaskGroup() as group:
        for _ in range(50):
            group.create_task(cache.incr(f"{namespace}n", ttl=30))

    assert await cache.get(f"{namespace}n") == b"50"


async def test_delete_prefix_deletes_only_keys_with_that_prefix(cache: ManagedCache, namespace: str) -> None:
    for key in ("a:1", "a:2", "a:3", "ab:1", "b:1"):
        await cache.set(f"{namespace}{key}", b"v")

    assert await cache.delete_prefix(f"{namespace}a:") == 3

    assert await cache.get(f"{namespace}a:1") is None
    assert await cache.get(f"{namespace}ab:1") == b"v"
    assert await cache.get(f"{namespace}b:1") == b"v"
    assert await cache.delete_prefix(f"{namespace}a:") == 0


async def test_delete_prefix_treats_glob_characters_literally(cache: ManagedCache, namespace: str) -> None:
    await cache.set(f"{namespace}x*[a]?\\", b"literal")
    await cache.set(f"{namespace}xy[a]?\\", b"other")
    await cache.set(f"{namespace}xa", b"other")

    assert await cache.delete_prefix(f"{namespace}x*[a]?") == 1

    assert await cache.get(f"{namespace}xy[a]?\\") == b"other"
    assert await cache.get(f"{namespace}xa") == b"other"


async def test_tenant_flush_never_touches_another_tenant(cache: ManagedCache, namespace: str) -> None:
    # "acme" is a prefix of "acme-corp": only the ":" terminator keeps their keys apart.
    acme = PrefixedCache(cache, f"{namespace}tenant:acme:")
    acme_corp = PrefixedCache(cache, f"{namespace}tenant:acme-corp:")
    for tenant in (acme, acme_corp):
        await tenant.set("plugin:notes:1", b"v")
        await tenant.set("roles", b"v")
        await tenant.incr("hits", ttl=60)

    assert await acme.delete_prefix("") == 3

    assert await acme.get("roles") is None
    assert await acme_corp.get("roles") == b"v"
    assert await acme_corp.get("plugin:notes:1") == b"v"
    assert await acme_corp.get("hits") == b"1"


async def test_delete_prefix_spans_many_keys(cache: ManagedCache, namespace: str) -> None:
    for index in range(1200):
        await cache.set(f"{namespace}bulk:{index}", b"v")

    assert await cache.delete_prefix(f"{namespace}bulk:") == 1200
    assert await cache.get(f"{namespace}bulk:0") is None
