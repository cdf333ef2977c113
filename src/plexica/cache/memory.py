"""The in-process cache: the embedded default, and the twin that Redis is tested against.

It keeps Redis's semantics where callers can see them (byte values, decimal counters, ttls set
when a counter is created, prefix deletes) so that code tested on it behaves the same on Redis.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Self, final

from plexica.cache.base import resolve_ttl
from plexica_sdk.errors import ValidationError

__all__ = ["MemoryCache"]

# Redis counters are signed 64-bit decimals without a sign or leading zeros to spare.
_INT_RE = re.compile(rb"-?(0|[1-9][0-9]*)")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def parse_counter(key: str, raw: bytes) -> int:
    """Read a stored counter the way Redis does.

    Raises:
        ValidationError: the value is not a signed 64-bit decimal integer.
    """
    if _INT_RE.fullmatch(raw) is None or not _INT64_MIN <= int(raw) <= _INT64_MAX:
        raise ValidationError(f"cache key {key!r} does not hold a 64-bit integer", field="key")
    return int(raw)


@final
class MemoryCache:
    """A bounded in-process cache with ttls and least-recently-used eviction.

    Expiry uses a monotonic clock, so wall-clock jumps (NTP, DST) neither resurrect nor kill
    entries early. Expired entries are dropped when read; the ones nobody reads drift to the
    old end of the LRU order and are the first to be evicted, so no sweeper task is needed.

    No method awaits anything, so each runs to completion before another task gets the event
    loop: ``incr`` from concurrent tasks never loses an update, and no lock is needed. The cache
    is not meant to be shared between threads or event loops.

    Args:
        max_entries: how many keys it holds before evicting the least recently used one.
        default_ttl: seconds a key lives when ``set``/``incr`` pass no ttl; ``None``: forever.
        clock: the monotonic clock, in seconds; tests pass a fake one.
    """

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        default_ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValidationError(f"max_entries must be at least 1, got {max_entries}", field="max_entries")
        resolve_ttl(None, default_ttl)
        self._max_entries = max_entries
        self._default_ttl = default_ttl
        self._clock = clock
        # key -> (value, expiry deadline on the clock or None); order is least recently used first.
        self._entries: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        """How many keys are held, expired ones not yet dropped included."""
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        """Return the value of ``key``, or ``None`` when it is missing or expired."""
        entry = self._live_entry(key)
        return None if entry is None else entry[0]

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of ``keys``, like :meth:`get` for each."""
        return [None if (entry := self._live_entry(key)) is None else entry[0] for key in keys]

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (default: the cache's ``default_ttl``).

        Raises:
            ValidationError: ``ttl`` is zero, negative or not finite.
        """
        self._store(key, bytes(value), self._deadline(ttl))

    async def delete(self, *keys: str) -> int:
        """Delete ``keys`` and return how many of them existed."""
        deleted = 0
        for key in keys:
            if self._live_entry(key) is not None:
                del self._entries[key]
                deleted += 1
        return deleted

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        """Add ``amount`` to the counter at ``key`` and return the new value.

        A missing key starts at 0 and gets ``ttl`` (or the default ttl); an existing one keeps
        its expiry, which is what makes fixed-window rate limits work.

        Raises:
            ValidationError: the key holds something other than a 64-bit integer, the result
                would overflow, or ``ttl`` is invalid.
        """
        deadline = self._deadline(ttl)
        entry = self._live_entry(key)
        if entry is not None:
            current, deadline = parse_counter(key, entry[0]), entry[1]
        else:
            current = 0
        result = current + amount
        if not _INT64_MIN <= result <= _INT64_MAX:
            raise ValidationError(f"incrementing cache key {key!r} would overflow", field="amount")
        self._store(key, str(result).encode("ascii"), deadline)
        return result

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every live key starting with ``prefix`` and return how many went."""
        now = self._clock()
        doomed = [key for key in self._entries if key.startswith(prefix)]
        live = 0
        for key in doomed:
            deadline = self._entries.pop(key)[1]
            live += deadline is None or deadline > now
        return live

    def _deadline(self, ttl: float | None) -> float | None:
        effective = resolve_ttl(ttl, self._default_ttl)
        return None if effective is None else self._clock() + effective

    def _live_entry(self, key: str) -> tuple[bytes, float | None] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] is not None and entry[1] <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def _store(self, key: str, value: bytes, deadline: float | None) -> None:
        self._entries[key] = (value, deadline)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
