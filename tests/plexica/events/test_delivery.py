"""The delivery cache: what the bus asks per event is answered from memory, and changes clear it at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from plexica.events.delivery import DeliveryCache
from plexica.events.kafka import KafkaOptions
from plexica.settings import KafkaSettings, load_settings
from plexica.tenancy.naming import validate_slug
from plexica_sdk import InvalidTenantSlugError
from plexica_sdk.types import Event
from tests.plexica.db.support import ItemsPlugin, MakePlatform, database_url, make_platform

__all__ = ["database_url", "make_platform"]

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Loader:
    def __init__(self, value: str | None = "v") -> None:
        self.value = value
        self.calls = 0

    async def __call__(self) -> str | None:
        self.calls += 1
        return self.value


async def test_a_cached_answer_is_reused_until_its_ttl_runs_out() -> None:
    clock, load = Clock(), Loader()
    cache: DeliveryCache[str] = DeliveryCache(5.0, 10, clock=clock)
    assert [await cache.get("k", load) for _ in range(3)] == ["v", "v", "v"]
    assert load.calls == 1
    clock.now = 5.1
    await cache.get("k", load)
    assert load.calls == 2


async def test_invalidate_forgets_everything_and_unknowns_are_never_cached() -> None:
    cache: DeliveryCache[str] = DeliveryCache(60.0, 10)
    known, unknown = Loader(), Loader(None)
    await cache.get("k", known)
    cache.invalidate()
    await cache.get("k", known)
    assert known.calls == 2
    assert await cache.get("u", unknown) is None
    assert await cache.get("u", unknown) is None
    assert unknown.calls == 2


async def test_the_cache_keeps_at_most_size_entries_least_recently_used_first() -> None:
    cache: DeliveryCache[str] = DeliveryCache(60.0, 2)
    loads = {key: Loader(key) for key in "abc"}
    for key in "abac":  # "b" is the least recently used when "c" arrives
        await cache.get(key, loads[key])
    assert len(cache) == 2
    await cache.get("a", loads["a"])
    await cache.get("b", loads["b"])
    assert (loads["a"].calls, loads["b"].calls) == (1, 2)


async def test_an_answer_loaded_across_an_invalidation_is_not_kept() -> None:
    cache: DeliveryCache[str] = DeliveryCache(60.0, 10)
    started, release = asyncio.Event(), asyncio.Event()

    async def slow() -> str:
        started.set()
        await release.wait()
        return "stale"

    task = asyncio.create_task(cache.get("k", slow))
    await started.wait()
    cache.invalidate()  # the change committed while the old answer was on its way
    release.set()
    assert await task == "stale"
    assert len(cache) == 0


async def test_delivery_lookups_hit_the_cache_and_tenant_changes_clear_it(
    make_platform: MakePlatform, tmp_path: Path
) -> None:
    plugin = ItemsPlugin(None)
    platform = await make_platform(plugin)
    tenant = await platform.tenants.provision("acme")
    event = Event(type="items.item.added", source="/plugins/items", tenantid=tenant.id)
    assert await platform.is_active("items", "acme")
    hits = platform.delivery_cache.hits
    for _ in range(5):
        assert (await platform.context_for(event)) is not None
        assert await platform.is_active("items", "acme")
    assert platform.delivery_cache.hits - hits >= 9  # one miss for the context, none for installs

    await platform.tenants.uninstall_plugin("acme", "items")
    assert not await platform.is_active("items", "acme")  # at once, not after the TTL
    await platform.tenants.suspend("acme")
    ctx = await platform.context_for(event)
    assert ctx is not None and ctx.status == "suspended"
    await platform.tenants.delete("acme")
    assert await platform.context_for(event) is None


def test_the_global_slug_is_reserved_for_tenantless_topics() -> None:
    with pytest.raises(InvalidTenantSlugError):
        validate_slug("global")
    assert validate_slug("globex") == "globex"


def test_kafka_client_tuning_comes_from_the_event_settings() -> None:
    settings = load_settings(
        environ={"PLEXICA_EVENTS__KAFKA__LINGER_MS": "20", "PLEXICA_EVENTS__KAFKA__CLIENT_ID": "host-7"}
    )
    assert settings.events.kafka == KafkaSettings(linger_ms=20, client_id="host-7")
    assert KafkaOptions is KafkaSettings  # the first name still works
