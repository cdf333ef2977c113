"""The versioned L2 cache, on the in-process cache and on Redis: stamps, ttls, and the late-writer race."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from plexica.cache import MemoryCache
from plexica.permissions import PermissionEngine, PermissionService
from plexica.permissions.cache import COUNTER_TTL, PermissionCache
from plexica.permissions.decision import Grants
from plexica.tenancy.naming import cache_prefix
from plexica_sdk.protocols import Cache
from tests.plexica.permissions.conftest import MakeEngine, MakeTenant

pytestmark = pytest.mark.anyio

GRANTS = Grants.build("ann", grants=[("editor", None, "user")])


async def test_an_entry_is_used_only_at_the_stamp_it_was_computed_at(cache: Cache) -> None:
    store = PermissionCache(cache)
    slug = f"c{random.randrange(10**9)}"
    stamp = (await store.tenant_version(slug), await store.user_version(slug, "ann"))
    await store.put(slug, "ann", stamp, GRANTS)
    assert await store.get(slug, "ann", stamp) == GRANTS
    await store.bump_user(slug, "ann")
    newer = (await store.tenant_version(slug), await store.user_version(slug, "ann"))
    assert newer != stamp and newer[0] == stamp[0]
    assert await store.get(slug, "ann", newer) is None
    await store.bump_tenant(slug)
    assert (await store.tenant_version(slug)) != newer[0]
    await cache.delete_prefix(cache_prefix(slug))


async def test_a_lost_counter_comes_back_at_a_fresh_value_never_at_an_old_stamp(cache: Cache) -> None:
    store = PermissionCache(cache, rng=random.Random(7))
    slug = f"c{random.randrange(10**9)}"
    seen = set()
    for _ in range(20):
        seen.add(await store.user_version(slug, "ann"))
        await cache.delete(store.user_version_key(slug, "ann"))  # evicted or expired
    assert len(seen) == 20
    await cache.delete_prefix(cache_prefix(slug))


async def test_user_ids_cannot_forge_each_others_keys() -> None:
    keys = {
        PermissionCache.entry_key("acme", "ann"),
        PermissionCache.user_version_key("acme", "ann"),
        PermissionCache.entry_key("acme", "ann:version"),
        PermissionCache.entry_key("acme", "ann/x"),
        PermissionCache.tenant_version_key("acme"),
    }
    assert len(keys) == 5
    assert PermissionCache.entry_key("acme", "ann") == "tenant:{acme}:permissions:ann"


async def test_entries_get_a_jittered_ttl_of_about_five_minutes() -> None:
    ttls: list[float] = []
    cache = MemoryCache()
    original = cache.set

    async def recording_set(key: str, value: bytes, *, ttl: float | None = None) -> None:
        assert ttl is not None
        ttls.append(ttl)
        await original(key, value, ttl=ttl)

    cache.set = recording_set  # type: ignore[method-assign]
    store = PermissionCache(cache, rng=random.Random(1))
    for _ in range(50):
        await store.put("acme", "ann", (1, 1), GRANTS)
    assert all(270 <= ttl <= 330 for ttl in ttls) and len(set(ttls)) == 50
    assert COUNTER_TTL > 330  # a counter outlives every entry stamped with it


async def test_a_corrupt_entry_is_a_miss(cache: Cache) -> None:
    store = PermissionCache(cache)
    slug = f"c{random.randrange(10**9)}"
    await cache.set(store.entry_key(slug, "ann"), b"{not json")
    assert await store.get(slug, "ann", (1, 1)) is None
    await cache.set(store.user_version_key(slug, "ann"), b"garbage")
    assert isinstance(await store.user_version(slug, "ann"), int)
    await cache.delete_prefix(cache_prefix(slug))


async def test_a_late_writer_cannot_resurrect_a_revoked_grant(
    cache: Cache, make_engine: MakeEngine, make_tenant: MakeTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reader A reads the grant, stalls; B revokes and bumps; A then writes its stale entry."""
    tenant = await make_tenant()
    reader, writer, fresh = make_engine(cache), make_engine(cache), make_engine(cache)  # three processes
    await PermissionService(tenant.db, writer).grant(tenant.ctx, "tasks-editor", user_id="ann")

    read_done, release = asyncio.Event(), asyncio.Event()
    original = reader._load_grants

    async def slow_load(ctx: Any, user: str) -> Any:
        grants = await original(ctx, user)  # read (and the transaction closed) before the revocation
        read_done.set()
        await release.wait()  # ...and held while the revocation commits
        return grants

    monkeypatch.setattr(reader, "_load_grants", slow_load)
    stalled = asyncio.create_task(reader.authorize(tenant.request("ann"), "tasks:task:write"))
    await read_done.wait()
    await PermissionService(tenant.db, writer).revoke(tenant.ctx, "tasks-editor", user_id="ann")
    release.set()
    assert (await stalled).allowed  # that request read before the revocation: it may still allow
    raw = await cache.get(PermissionCache.entry_key(tenant.slug, "ann"))
    assert raw is not None and b"tasks-editor" in raw  # the stale entry did land in the cache

    monkeypatch.setattr(reader, "_load_grants", original)
    for engine in (reader, writer, fresh):
        assert not (await engine.authorize(tenant.request("ann"), "tasks:task:write")).allowed
    await cache.delete_prefix(cache_prefix(tenant.slug))


async def test_removing_a_grant_removes_access_by_the_next_request_in_every_process(
    cache: Cache, make_engine: MakeEngine, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    engines = [make_engine(cache) for _ in range(3)]
    service = PermissionService(tenant.db, engines[0])
    await service.grant(tenant.ctx, "tasks-editor", user_id="ann")
    for engine in engines:
        assert (await engine.authorize(tenant.request("ann"), "tasks:task:write")).allowed
    await service.revoke(tenant.ctx, "tasks-editor", user_id="ann")
    for engine in engines:
        assert not (await engine.authorize(tenant.request("ann"), "tasks:task:write")).allowed
    await cache.delete_prefix(cache_prefix(tenant.slug))


async def test_a_request_keeps_its_answers_until_its_scope_expires(
    make_engine: MakeEngine, make_tenant: MakeTenant
) -> None:
    now = [0.0]
    tenant = await make_tenant()
    shared = MemoryCache()
    local: PermissionEngine = make_engine(shared, clock=lambda: now[0])
    remote = make_engine(shared)
    await PermissionService(tenant.db, remote).grant(tenant.ctx, "tasks-editor", user_id="ann")
    request = tenant.request("ann")
    assert (await local.authorize(request, "tasks:task:write")).allowed
    await PermissionService(tenant.db, remote).revoke(tenant.ctx, "tasks-editor", user_id="ann")
    assert (await local.authorize(request, "tasks:task:write")).allowed  # same request, another process
    now[0] += local.scope_ttl
    assert not (await local.authorize(request, "tasks:task:write")).allowed
