"""The host's own view of the shared cache: an outage of Redis is a miss, not an error.

The tenant directory, the permission and admission caches and plugin configuration all keep the
truth in the database and only a copy in the cache, so while Redis does not answer they can serve
from the database, slower. :class:`FallbackCache` wraps the shared cache for them:

* a read that fails is a miss (the caller loads from the database), a write that fails is skipped;
* an invalidation that fails (``delete``, ``delete_prefix``, a counter ``incr``, a ``publish`` on
  the invalidation channel) is *owed*: it is replayed before the next operation once Redis
  answers, so an entry written before a change (a revoked grant, a disabled user) cannot come back
  when Redis does (one operation replays it; the others keep falling back meanwhile). A failed
  ``incr`` answers a fresh random number: the permission versions are opaque
  (:mod:`plexica.permissions.cache`), so a random one only costs a miss, and the other counters'
  values are never read back (:mod:`plexica.identity.stamps`);
* after a failure the cache is skipped for ``retry_seconds``; then one operation probes it while
  the others keep falling back, so a Redis that hangs costs one probe per interval, not a timeout
  per request.

Each operation answered without the backend is counted (:attr:`FallbackCache.fallbacks`, the
``cache_fallbacks_total`` metric); the outage is logged at most once per ``log_every`` seconds.
Only the host's own caches go through it: rate limiting keeps its configured fail mode, gateway
replay protection fails closed, and plugins' ``host.cache`` still raises
:class:`~plexica_sdk.errors.BackendUnavailableError`.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Final, TypeVar

from plexica.cache.base import get_many
from plexica.cache.layered import InvalidationChannel
from plexica_sdk.errors import BackendUnavailableError

if TYPE_CHECKING:
    from plexica_sdk.protocols import Cache

__all__ = ["BroadcastingFallbackCache", "FallbackCache", "fallback_for"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: How many keys, prefixes and messages may be owed before further ones are given up (and logged).
#: Reads during an outage owe bumps too (a permission read creates its missing version counters),
#: so this is sized for every user active in one process during an outage, not for the writes.
MAX_OWED: Final = 100_000
#: Keys deleted by one command when owed deletions are replayed.
_DELETE_BATCH: Final = 500
_rng = random.SystemRandom()


class FallbackCache:
    """A :class:`~plexica_sdk.protocols.Cache` over ``backend`` that survives its outages; see the module.

    It does not own ``backend`` (the platform enters and leaves it).

    Args:
        backend: the shared cache.
        retry_seconds: how long the backend is skipped after a failure before it is probed again.
        log_every: seconds between two warnings while the backend is down.
        clock: the monotonic clock, in seconds; tests pass a fake one.
    """

    def __init__(
        self,
        backend: Cache,
        *,
        retry_seconds: float = 1.0,
        log_every: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backend = backend
        self._retry_seconds = retry_seconds
        self._log_every = log_every
        self._clock = clock
        self._down_until = -math.inf  # skipped until then; -inf: available
        self._probing = False
        self._logged_at = -math.inf
        self._owed_keys: set[str] = set()
        self._owed_prefixes: set[str] = set()
        self._owed_counters: dict[str, tuple[int, float | None]] = {}
        self._owed_messages: dict[str, set[bytes]] = {}
        self._settling = asyncio.Lock()
        self._broadcaster: InvalidationChannel | None = backend if isinstance(backend, InvalidationChannel) else None
        self.fallbacks = 0  # operations answered without the backend (metrics, tests)

    @property
    def backend(self) -> Cache:
        """The wrapped shared cache."""
        return self._backend

    @property
    def available(self) -> bool:
        """Whether the last operation reached the backend and nothing is owed to it."""
        return self._down_until == -math.inf and not self._owes

    @property
    def _owes(self) -> bool:
        return bool(self._owed_keys or self._owed_prefixes or self._owed_counters or self._owed_messages)

    # ------------------------------------------------------------------ the Cache protocol

    async def get(self, key: str) -> bytes | None:
        """The value at ``key``; ``None`` (a miss) while the backend does not answer."""
        return await self._call(lambda: self._backend.get(key), None)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of ``keys`` in one round trip where the backend can; all misses while it is down."""
        return await self._call(lambda: get_many(self._backend, keys), [None] * len(keys))

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Store ``value``; skipped while the backend is down (the next read loads it again)."""
        await self._call(lambda: self._backend.set(key, value, ttl=ttl), None)

    async def delete(self, *keys: str) -> int:
        """Delete ``keys``, or owe their deletion (answering 0) while the backend is down."""
        deleted = await self._call(lambda: self._backend.delete(*keys), None)
        if deleted is None:
            self._owe(self._owed_keys, keys)
            return 0
        return deleted

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every key under ``prefix``, or owe it (answering 0) while the backend is down."""
        deleted = await self._call(lambda: self._backend.delete_prefix(prefix), None)
        if deleted is None:
            self._owe(self._owed_prefixes, (prefix,))
            return 0
        return deleted

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        """Bump the counter, or owe the bump and answer a fresh random value while the backend is down."""
        value = await self._call(lambda: self._backend.incr(key, amount, ttl=ttl), None)
        if value is None:
            owed, _ = self._owed_counters.get(key, (0, None))
            if key in self._owed_counters or self._room():
                self._owed_counters[key] = (owed + amount, ttl)
            return _rng.randrange(1, 2**62)
        return value

    # ------------------------------------------------------------------ the fallback

    async def _call(self, operation: Callable[[], Awaitable[T]], fallback: T) -> T:
        if not self._may_try():
            self.fallbacks += 1
            return fallback
        probe = self._down_until != -math.inf
        if probe:
            self._probing = True
        try:
            # One operation replays what is owed; the others keep falling back meanwhile, not waiting.
            if self._owes and (self._settling.locked() or not await self._settle()):
                self.fallbacks += 1
                return fallback
            result = await operation()
        except BackendUnavailableError as exc:
            self._failed(exc)
            self.fallbacks += 1
            return fallback
        finally:
            if probe:
                self._probing = False
        if self._down_until != -math.inf:
            self._down_until = -math.inf
            logger.warning("shared cache answers again; caching resumed")
        return result

    def _may_try(self) -> bool:
        if self._down_until == -math.inf:
            return True
        return not self._probing and self._clock() >= self._down_until

    def _failed(self, exc: BackendUnavailableError) -> None:
        now = self._clock()
        self._down_until = now + self._retry_seconds
        if now - self._logged_at >= self._log_every:
            self._logged_at = now
            # The backend and the error's class only: a driver's message may carry a URL with a password.
            logger.warning(
                "shared cache unavailable; serving from the database",
                extra={"backend": exc.backend, "error": type(exc.__cause__ or exc).__name__},
            )

    def _room(self) -> bool:
        owed = len(self._owed_keys) + len(self._owed_prefixes) + len(self._owed_counters)
        owed += sum(len(messages) for messages in self._owed_messages.values())
        if owed < MAX_OWED:
            return True
        logger.error("too many cache invalidations owed; later ones are lost and stale entries may live out their ttl")
        return False

    def _owe(self, owed: builtins.set[str], items: Sequence[str]) -> None:
        for item in items:
            if item in owed or self._room():
                owed.add(item)

    def _owe_message(self, channel: str, message: bytes) -> None:
        messages = self._owed_messages.setdefault(channel, set())
        if message in messages or self._room():
            messages.add(message)

    async def _settle(self) -> bool:
        """Replay what is owed, in one go; ``False`` (still owed) if the backend fails meanwhile."""
        async with self._settling:
            keys, prefixes, counters = set(self._owed_keys), set(self._owed_prefixes), dict(self._owed_counters)
            messages = {channel: set(sent) for channel, sent in self._owed_messages.items()}
            try:
                for key, (amount, ttl) in counters.items():
                    await self._backend.incr(key, amount, ttl=ttl)
                    del self._owed_counters[key]
                ordered = sorted(keys)
                for start in range(0, len(ordered), _DELETE_BATCH):
                    batch = ordered[start : start + _DELETE_BATCH]
                    await self._backend.delete(*batch)
                    self._owed_keys.difference_update(batch)
                for prefix in prefixes:
                    await self._backend.delete_prefix(prefix)
                    self._owed_prefixes.discard(prefix)
                for channel, sent in messages.items():
                    for message in sent:
                        assert self._broadcaster is not None  # only a broadcasting backend owes messages
                        await self._broadcaster.publish(channel, message)
                        self._owed_messages[channel].discard(message)
                    if not self._owed_messages[channel]:
                        del self._owed_messages[channel]
            except BackendUnavailableError as exc:
                self._failed(exc)
                return False
        if keys or prefixes or counters or messages:
            logger.warning("owed cache invalidations replayed", extra={"keys": len(keys) + len(counters)})
        return True


class BroadcastingFallbackCache(FallbackCache):
    """A :class:`FallbackCache` over a backend that broadcasts (Redis pub/sub), broadcasting too.

    A failed ``publish`` is owed like an invalidation: every other process sharing the backend lost
    its subscription meanwhile (so it serves its L1 for ``max_age`` only) unless the outage was this
    process's alone, and then the replay reaches it. ``listen`` is the backend's own: the layered
    cache already reconnects it.
    """

    async def publish(self, channel: str, message: bytes) -> None:
        """Send ``message`` to every subscriber, or owe it while the backend is down."""
        broadcaster = self._broadcaster
        assert broadcaster is not None

        async def send() -> bool:
            await broadcaster.publish(channel, message)
            return True

        if await self._call(send, None) is None:
            self._owe_message(channel, message)

    def listen(self, channel: str, on_subscribed: Callable[[], None]) -> AsyncIterator[bytes]:
        """The backend's subscription (it raises when the connection is lost)."""
        assert self._broadcaster is not None
        return self._broadcaster.listen(channel, on_subscribed)


def fallback_for(backend: Cache, *, retry_seconds: float = 1.0) -> FallbackCache:
    """The fallback view of ``backend``: one that broadcasts when ``backend`` does (Redis)."""
    kind = BroadcastingFallbackCache if isinstance(backend, InvalidationChannel) else FallbackCache
    return kind(backend, retry_seconds=retry_seconds)
