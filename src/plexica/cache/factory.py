"""Build the cache the settings ask for; the caller enters it on the lifespan's exit stack."""

from __future__ import annotations

from typing import TYPE_CHECKING

from plexica.cache.memory import MemoryCache
from plexica.cache.redis import RedisCache

if TYPE_CHECKING:
    from plexica.cache.base import ManagedCache
    from plexica.settings import CacheSettings

__all__ = ["create_cache"]


def create_cache(settings: CacheSettings) -> ManagedCache:
    """Return Redis (or a Redis Cluster) when ``settings.redis_url`` is set, else the in-process cache.

    Connects nothing.

    ``settings.ttl_seconds`` becomes the default ttl of keys written without one, so nothing
    stays in a shared Redis forever by accident.

    Usage::

        cache = await stack.enter_async_context(create_cache(settings.cache))

    Raises:
        MissingDependencyError: a Redis URL is set but ``redis`` is not installed.
    """
    if settings.redis_url is None:
        return MemoryCache(default_ttl=settings.ttl_seconds)
    return RedisCache(settings.redis_url, default_ttl=settings.ttl_seconds, cluster=settings.redis_cluster)
