"""What only the Redis cache does: lifecycle, batching, and translating Redis's failures."""

from __future__ import annotations

import importlib
import uuid
from types import ModuleType

import pytest

from plexica.cache import RedisCache
from plexica_sdk.errors import BackendUnavailableError, MissingDependencyError, ValidationError

pytestmark = pytest.mark.anyio


def test_missing_redis_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = importlib.import_module

    def no_redis(name: str, package: str | None = None) -> ModuleType:
        if name.startswith("redis"):
            raise ImportError(name)
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", no_redis)

    with pytest.raises(MissingDependencyError) as caught:
        RedisCache("redis://127.0.0.1:6379/0")
    assert caught.value.extra == "redis"


def test_building_connects_nothing_and_hides_the_url() -> None:
    cache = RedisCache("redis://:hunter2@127.0.0.1:1/0")

    assert "hunter2" not in repr(cache)


async def test_using_a_cache_that_is_not_open_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="not open"):
        await RedisCache("redis://127.0.0.1:1/0").get("k")


async def test_unreachable_server_is_backend_unavailable() -> None:
    # Port 1 on loopback: nothing listens there, so the connection is refused at once.
    cache = RedisCache("redis://127.0.0.1:1/0", socket_timeout=1)

    with pytest.raises(BackendUnavailableError) as caught:
        async with cache:
            pass  # pragma: no cover
    assert caught.value.backend == "redis"


@pytest.mark.redis
async def test_delete_prefix_unlinks_in_batches(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    async with RedisCache(redis_url, scan_count=2, unlink_batch=3) as cache:
        for index in range(10):
            await cache.set(f"{prefix}{index}", b"v")

        assert await cache.delete_prefix(prefix) == 10
        assert await cache.get(f"{prefix}0") is None


@pytest.mark.redis
async def test_cache_can_be_reopened_after_closing(redis_url: str) -> None:
    key = f"test:{uuid.uuid4().hex}"
    cache = RedisCache(redis_url, default_ttl=30)
    async with cache:
        await cache.set(key, b"v")
    async with cache:
        assert await cache.get(key) == b"v"
        await cache.delete(key)


@pytest.mark.redis
async def test_entering_twice_is_refused(redis_url: str) -> None:
    async with RedisCache(redis_url) as cache:
        with pytest.raises(RuntimeError, match="already open"):
            await cache.__aenter__()


@pytest.mark.parametrize("kwargs", [{"scan_count": 0}, {"unlink_batch": 0}], ids=["scan-count", "unlink-batch"])
def test_invalid_batch_sizes_are_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        RedisCache("redis://127.0.0.1:1/0", **kwargs)
