"""Pick the limiter backend that matches the host's cache."""

from __future__ import annotations

from plexica.ratelimit.base import RateLimiter
from plexica.ratelimit.memory import MemoryRateLimiter
from plexica.ratelimit.redis import RedisRateLimiter, ScriptRunner

__all__ = ["create_rate_limiter"]


def create_rate_limiter(cache: object) -> RateLimiter:
    """Redis when the host's cache runs Lua scripts (:class:`~plexica.cache.RedisCache`: one limit for
    every process), else the in-process limiter (one limit per process: the embedded mode).

    Connects nothing: the limiter uses the cache's pool once the lifespan has opened it.
    """
    if isinstance(cache, ScriptRunner):
        return RedisRateLimiter(cache)
    return MemoryRateLimiter()
