"""The ``cache`` fixture: each behavioural test runs on the in-process cache and on Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from plexica.cache import ManagedCache, MemoryCache, RedisCache


@pytest.fixture(
    params=[
        pytest.param("memory", id="memory"),
        pytest.param("redis", id="redis", marks=pytest.mark.redis),
    ]
)
async def cache(request: pytest.FixtureRequest, anyio_backend: str) -> AsyncIterator[ManagedCache]:
    """An open cache of each backend; Redis comes from the session's ``redis_url``."""
    backend: ManagedCache = (
        MemoryCache() if request.param == "memory" else RedisCache(request.getfixturevalue("redis_url"))
    )
    async with backend:
        yield backend


@pytest.fixture
async def namespace(cache: ManagedCache) -> AsyncIterator[str]:
    """A key prefix no other test uses, flushed afterwards so Redis is left as found."""
    prefix = f"test:{uuid.uuid4().hex}:"
    yield prefix
    await cache.delete_prefix(prefix)
