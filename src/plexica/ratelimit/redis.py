"""The Redis rate limiter: one limit shared by every host process, one round trip per request.

It runs :data:`~plexica.ratelimit.gcra.LUA_SCRIPT` through the host's own
:class:`~plexica.cache.RedisCache` (its connection pool, its error translation). Every key of one
request carries the tenant as a hash tag (``rate_limit:{tenant}:...``), so on a Redis Cluster the
user partition and the tenant cap share a slot and one script can check both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, final, runtime_checkable

from plexica.ratelimit.base import Quota, QuotaState, Verdict
from plexica.ratelimit.gcra import LUA_SCRIPT
from plexica_sdk.errors import BackendUnavailableError

__all__ = ["RedisRateLimiter", "ScriptRunner"]


@runtime_checkable
class ScriptRunner(Protocol):
    """A cache that runs Lua atomically: :class:`~plexica.cache.RedisCache`, or a provided one that can."""

    async def run_script(self, source: str, keys: Sequence[str], args: Sequence[int | str]) -> Any: ...


@final
class RedisRateLimiter:
    """GCRA in one Lua script; the cache must be open (the host's lifespan opens it) before use."""

    name = "redis"

    def __init__(self, cache: ScriptRunner) -> None:
        self._cache = cache

    def __repr__(self) -> str:
        return f"<RedisRateLimiter on {self._cache!r}>"

    async def acquire(self, quotas: Sequence[Quota]) -> Verdict:
        """Admit a request against every quota or refuse it, atomically, in one ``EVALSHA``.

        Raises:
            BackendUnavailableError: Redis did not answer or refused the script.
        """
        args: list[int | str] = []
        for quota in quotas:
            args += [quota.limit, quota.interval_us, quota.charge]
        reply = await self._cache.run_script(LUA_SCRIPT, [q.key for q in quotas], args)
        if not isinstance(reply, list) or len(reply) != 2 + 2 * len(quotas):
            raise BackendUnavailableError("redis", "unexpected rate limit script reply")
        states = tuple(
            QuotaState(q.policy, q.limit, q.window_seconds, int(reply[2 + 2 * i]), int(reply[3 + 2 * i]) / 1_000_000)
            for i, q in enumerate(quotas)
        )
        return Verdict(bool(reply[0]), int(reply[1]) / 1_000_000, states)
