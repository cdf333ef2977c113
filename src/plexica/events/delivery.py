"""``DeliveryCache``: the tenant and plugin-install lookups the bus makes for every event, cached.

The bus asks the host, per delivered event, for the tenant's context and whether the plugin is
enabled there; without a cache each question is a database round trip. Entries live
``ttl`` seconds in a bounded LRU. The host clears the whole cache in-process whenever a tenant's
status or plugin installs change (``TenantService``'s ``on_change``), so this process never acts on
a stale answer after its own change; the TTL bounds how long a change made by *another* process
goes unnoticed. Unknown tenants are not cached: a tenant created elsewhere is found at once.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar, final

__all__ = ["DeliveryCache"]

V = TypeVar("V")


@final
class DeliveryCache(Generic[V]):
    """A bounded TTL cache of lookups, cleared all at once on any change.

    Args:
        ttl: seconds an entry is trusted; 0 turns caching off.
        size: entries kept at most (least recently used go first).
        clock: monotonic seconds (tests pass a fake).
    """

    def __init__(self, ttl: float, size: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._size = size
        self._clock = clock
        self._entries: collections.OrderedDict[Hashable, tuple[float, V]] = collections.OrderedDict()
        self._generation = 0
        self.hits = 0
        self.misses = 0

    async def get(self, key: Hashable, load: Callable[[], Awaitable[V | None]]) -> V | None:
        """The cached value of ``key``, or what ``load`` returns (kept unless ``None``)."""
        now = self._clock()
        found = self._entries.get(key)
        if found is not None and found[0] > now:
            self._entries.move_to_end(key)
            self.hits += 1
            return found[1]
        self.misses += 1
        generation = self._generation
        value = await load()
        # A change during the load may have made ``value`` stale: keep it only if none happened.
        if value is not None and self._ttl > 0 and generation == self._generation:
            self._entries[key] = (now + self._ttl, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return value

    def invalidate(self) -> None:
        """Forget everything (a tenant or plugin install changed)."""
        self._entries.clear()
        self._generation += 1

    def __len__(self) -> int:
        return len(self._entries)
