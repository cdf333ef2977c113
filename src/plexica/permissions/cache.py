"""Versioned L2 cache of each user's grants: ``tenant:{slug}:permissions:{user}``.

Two counters decide whether a cached entry is current: the tenant's
(``tenant:{slug}:permissions-version``: roles, policies, plugins, team grants) and the user's
(``tenant:{slug}:permissions:{user}:version``: their grants, teams, memberships). A reader reads
both counters *before* it reads the database and stamps the entry it writes with them; a writer
bumps a counter *after* its transaction commits. So an entry computed from data older than a
change carries an older stamp than the one every later reader sees, and is never used: a late
writer cannot resurrect a revoked permission, it can only cost one more miss.

Counters are opaque numbers, not sequences: a missing counter (evicted, expired) is recreated at
a random value and bumps add a random step, so a recreated counter never meets an old stamp again.
"""

from __future__ import annotations

import json
import random
from typing import Final, final
from urllib.parse import quote

from plexica.cache.base import get_many
from plexica.permissions.decision import Grants
from plexica.tenancy.naming import cache_prefix
from plexica_sdk.errors import ValidationError
from plexica_sdk.protocols import Cache

__all__ = ["COUNTER_TTL", "ENTRY_TTL", "PermissionCache", "Stamp"]

ENTRY_TTL: Final = 300.0
COUNTER_TTL: Final = 7 * 24 * 3600.0
_STEP: Final = 2**31

Stamp = tuple[int, int]


@final
class PermissionCache:
    """Reads and writes the versioned entries on any :class:`~plexica_sdk.protocols.Cache`.

    Args:
        cache: the shared cache (L2): Redis in production, the in-process cache embedded.
        ttl: seconds an entry lives, before jitter.
        jitter: the fraction by which each entry's ttl varies, so entries written together do
            not expire together.
        rng: the random source of jitter and counter steps.
    """

    def __init__(
        self, cache: Cache, *, ttl: float = ENTRY_TTL, jitter: float = 0.1, rng: random.Random | None = None
    ) -> None:
        self.cache = cache
        self.ttl = ttl
        self.jitter = jitter
        self._rng = rng or random.SystemRandom()
        self.hits = 0  # entries found current (the metrics' permission cache hit ratio)
        self.misses = 0  # entries missing or stale

    # ------------------------------------------------------------------ keys

    @staticmethod
    def tenant_version_key(slug: str) -> str:
        return f"{cache_prefix(slug)}permissions-version"

    @staticmethod
    def entry_key(slug: str, user_id: str) -> str:
        # Quoted, so that no user id can make its entry key another key (":" is never left).
        return f"{cache_prefix(slug)}permissions:{quote(user_id, safe='')}"

    @classmethod
    def user_version_key(cls, slug: str, user_id: str) -> str:
        return f"{cls.entry_key(slug, user_id)}:version"

    # -------------------------------------------------------------- counters

    async def _read_counter(self, key: str) -> int:
        return await self._counter(key, await self.cache.get(key))

    async def _bump(self, key: str) -> int:
        step = self._rng.randrange(1, _STEP)
        try:
            return await self.cache.incr(key, step, ttl=COUNTER_TTL)
        except ValidationError:  # overflowed or corrupt: start over at a fresh random value
            await self.cache.delete(key)
            return await self.cache.incr(key, step, ttl=COUNTER_TTL)

    async def read_state(self, slug: str, user_id: str) -> tuple[int, int, bytes | None]:
        """The tenant's version, the user's version and the user's entry, in one round trip.

        Counters are read with the entry (one ``MGET``; the keys share the tenant's hash tag) and
        before the database, as the module docstring requires; a missing one is created.
        """
        tenant_key, user_key = self.tenant_version_key(slug), self.user_version_key(slug, user_id)
        raw_tenant, raw_user, raw = await get_many(self.cache, (tenant_key, user_key, self.entry_key(slug, user_id)))
        return await self._counter(tenant_key, raw_tenant), await self._counter(user_key, raw_user), raw

    async def _counter(self, key: str, raw: bytes | None) -> int:
        if raw is not None:
            try:
                return int(raw)
            except ValueError:
                await self.cache.delete(key)
        return await self._bump(key)

    async def tenant_version(self, slug: str) -> int:
        """The tenant's current version (created when missing)."""
        return await self._read_counter(self.tenant_version_key(slug))

    async def user_version(self, slug: str, user_id: str) -> int:
        """The user's current version in the tenant (created when missing)."""
        return await self._read_counter(self.user_version_key(slug, user_id))

    async def bump_tenant(self, slug: str) -> int:
        """Invalidate every entry of the tenant; call after the change is committed."""
        return await self._bump(self.tenant_version_key(slug))

    async def bump_user(self, slug: str, user_id: str) -> int:
        """Invalidate one user's entry; call after the change is committed."""
        return await self._bump(self.user_version_key(slug, user_id))

    # --------------------------------------------------------------- entries

    async def get(self, slug: str, user_id: str, stamp: Stamp) -> Grants | None:
        """The cached grants of a user if they were computed at ``stamp``, else None."""
        return self.current(await self.read(slug, user_id), stamp)

    def current(self, raw: bytes | None, stamp: Stamp) -> Grants | None:
        """:meth:`decode`, counted as a hit or a miss."""
        grants = self.decode(raw, stamp)
        if grants is None:
            self.misses += 1
        else:
            self.hits += 1
        return grants

    async def read(self, slug: str, user_id: str) -> bytes | None:
        """A user's entry as stored, whatever its stamp (see :meth:`decode`)."""
        return await self.cache.get(self.entry_key(slug, user_id))

    @staticmethod
    def decode(raw: bytes | None, stamp: Stamp) -> Grants | None:
        """The grants in an entry if it was computed at ``stamp``, else None."""
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            if tuple(data["stamp"]) != stamp:
                return None
            return Grants.from_json(data["grants"])
        except (ValueError, KeyError, TypeError):
            return None

    async def put(self, slug: str, user_id: str, stamp: Stamp, grants: Grants) -> None:
        """Store grants computed from data read after the counters read ``stamp``."""
        ttl = self.ttl * (1 + self._rng.uniform(-self.jitter, self.jitter))
        payload = json.dumps({"stamp": list(stamp), "grants": grants.to_json()}, separators=(",", ":"))
        await self.cache.set(self.entry_key(slug, user_id), payload.encode(), ttl=ttl)
