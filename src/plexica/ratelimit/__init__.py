"""Request rate limits: GCRA partitions per tenant, user and route class; see docs/rate-limits.md."""

from __future__ import annotations

from plexica.ratelimit.base import Quota, QuotaState, RateLimiter, Verdict
from plexica.ratelimit.factory import create_rate_limiter
from plexica.ratelimit.memory import MemoryRateLimiter
from plexica.ratelimit.policy import RateLimitPolicy, Route
from plexica.ratelimit.redis import RedisRateLimiter, ScriptRunner

__all__ = [
    "MemoryRateLimiter",
    "Quota",
    "QuotaState",
    "RateLimitPolicy",
    "RateLimiter",
    "RedisRateLimiter",
    "Route",
    "ScriptRunner",
    "Verdict",
    "create_rate_limiter",
]
