"""The in-process rate limiter: the embedded default, exact within one process (nothing is shared)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import final

from plexica.ratelimit.base import Quota, QuotaState, Verdict
from plexica.ratelimit.gcra import gcra

__all__ = ["MemoryRateLimiter"]


def _monotonic_us() -> int:
    return time.monotonic_ns() // 1000


@final
class MemoryRateLimiter:
    """GCRA over a dict of TATs; no ``await`` between reading and writing, so every step is atomic.

    Args:
        clock: microseconds, monotonic (tests pass their own).
        max_keys: when more partitions are tracked, expired ones are dropped, then the oldest.
    """

    name = "memory"

    def __init__(self, *, clock: Callable[[], int] = _monotonic_us, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._tats: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"<MemoryRateLimiter {len(self._tats)} partitions>"

    async def acquire(self, quotas: Sequence[Quota]) -> Verdict:
        """Admit a request against every quota or refuse it (see :class:`~plexica.ratelimit.base.RateLimiter`)."""
        now = self._clock()
        tats = self._tats
        step = gcra([tats.get(q.key) for q in quotas], now, [(q.limit, q.interval_us, q.charge) for q in quotas])
        if step.allowed:
            for quota, tat in zip(quotas, step.tats, strict=True):
                tats.pop(quota.key, None)  # re-insert at the end: dict order is recency
                tats[quota.key] = tat
            if len(tats) > self._max_keys:
                self._evict(now)
        states = tuple(
            QuotaState(q.policy, q.limit, q.window_seconds, remaining, reset / 1_000_000)
            for q, remaining, reset in zip(quotas, step.remaining, step.reset_us, strict=True)
        )
        return Verdict(step.allowed, step.retry_after_us / 1_000_000, states)

    def _evict(self, now: int) -> None:
        for key in [key for key, tat in self._tats.items() if tat <= now]:
            del self._tats[key]
        while len(self._tats) > self._max_keys:
            del self._tats[next(iter(self._tats))]
