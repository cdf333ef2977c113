"""Cache entries that an invalidation can never lose to a racing refill.

A request that misses the cache reads the database and then writes the entry back; an
invalidation that commits between that read and that write would be undone by the write, and a
removed user could keep their access until the entry expires. So each entry is stamped with a
generation counter read *before* the database, and every invalidation bumps the counter: an entry
written from a read older than the last invalidation never matches again.

A read costs one round trip: counter and entry in one ``MGET`` (one lookup each on a cache
that cannot read many keys at once). When the cache is unavailable, reads miss and
writes are skipped, so callers fall back to the database; a failed invalidation is logged and the
entry's short ttl bounds how long it can linger.
"""

from __future__ import annotations

import logging
from typing import final

import attrs

from plexica.cache.base import get_many
from plexica_sdk.errors import BackendUnavailableError
from plexica_sdk.protocols import Cache

__all__ = ["Stamped", "StampedCache"]

logger = logging.getLogger(__name__)

_SEPARATOR = b"|"


@attrs.frozen
class Stamped:
    """What a read found: the valid value (``None``: miss) and the generation to stamp a refill with.

    ``generation`` is ``None`` when the cache is unavailable: the caller should not write back.
    """

    value: bytes | None
    generation: int | None


@final
class StampedCache:
    """Generation-stamped entries on any :class:`~plexica_sdk.protocols.Cache`.

    Args:
        cache: the shared cache (Redis in production, so every process sees an invalidation).
        ttl: seconds an entry lives.
        generation_ttl: seconds a counter lives after its last bump; far longer than ``ttl``, so a
            counter cannot expire (and restart at 0) while an entry stamped before it still lives.
    """

    def __init__(self, cache: Cache, *, ttl: float, generation_ttl: float = 7 * 24 * 3600) -> None:
        self.cache = cache
        self.ttl = ttl
        self.generation_ttl = generation_ttl

    async def read(self, key: str, generation_key: str) -> Stamped:
        try:
            raw_generation, raw = await get_many(self.cache, (generation_key, key))
        except BackendUnavailableError:
            return Stamped(None, None)
        generation = int(raw_generation) if raw_generation else 0
        if raw is not None:
            stamp, _, value = raw.partition(_SEPARATOR)
            if stamp == str(generation).encode():
                return Stamped(value, generation)
        return Stamped(None, generation)

    async def write(self, key: str, generation: int | None, value: bytes) -> None:
        if generation is None:
            return
        try:
            await self.cache.set(key, str(generation).encode() + _SEPARATOR + value, ttl=self.ttl)
        except BackendUnavailableError:
            logger.warning("cache unavailable; entry not written")

    async def invalidate(self, generation_key: str, *keys: str, prefix: str | None = None) -> None:
        """Bump the counter, then drop ``keys`` and every key under ``prefix`` (best effort)."""
        try:
            await self.cache.incr(generation_key, ttl=self.generation_ttl)
            if keys:
                await self.cache.delete(*keys)
            if prefix is not None:
                await self.cache.delete_prefix(prefix)
        except BackendUnavailableError:
            logger.error("cache unavailable; an invalidation was lost and stale entries may live out their ttl")
