"""Layered reads: L1 in process, L2 the shared cache, then the loader (the database).

Two L1s live here. :class:`RequestCache` is a plain dict for one request (the permission engine
reads the same keys many times per check). :class:`LayeredCache` is the process-wide one: a
bounded map whose entries are at most ``max_age`` seconds old, in front of the shared
:class:`~plexica_sdk.protocols.Cache` (Redis, or the in-process cache embedded), in front of a
loader. A cold key asked for by many tasks at once is loaded once (single flight).

Invalidation (:meth:`LayeredCache.invalidate`) drops the key from this process's L1, deletes it
from L2, and, when the backend can broadcast (:class:`InvalidationChannel`, Redis pub/sub), tells
every other process to drop it from theirs. Every key has a local version bumped by each
invalidation, so a load that started before an invalidation never fills L1 or L2 after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar, final, runtime_checkable

from plexica_sdk.converter import converter
from plexica_sdk.errors import ValidationError

if TYPE_CHECKING:
    from plexica_sdk.protocols import Cache

__all__ = ["INVALIDATION_CHANNEL", "InvalidationChannel", "LayeredCache", "RequestCache"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The pub/sub channel every host process listens on; a message is one key, UTF-8.
INVALIDATION_CHANNEL = "plexica:invalidate"


@runtime_checkable
class InvalidationChannel(Protocol):
    """A backend that can broadcast to every process sharing it (Redis pub/sub)."""

    async def publish(self, channel: str, message: bytes) -> None:
        """Send ``message`` to every current subscriber of ``channel``."""
        ...

    def listen(self, channel: str, on_subscribed: Callable[[], None]) -> AsyncIterator[bytes]:
        """Subscribe to ``channel``, call ``on_subscribed`` once confirmed, then yield messages.

        The iterator raises when the connection is lost; messages sent meanwhile are lost.
        """
        ...


@final
class LayeredCache:
    """L1 (this process, ``max_age`` bound) → L2 (``backend``) → loader, with single flight.

    Values are bytes at L2; :meth:`get` stores typed values as JSON through the one cattrs
    converter. A loader answering ``None`` (nothing there) is remembered in L1 only, so a burst
    of lookups of a missing key costs one load per ``max_age``, and a key that appears is found
    by every process within that bound even if its invalidation message is lost.

    The staleness bound: an L1 entry is served while it is younger than ``max_age``; when the
    backend broadcasts and this process is subscribed, invalidations arrive within milliseconds
    and the longer ``subscribed_max_age`` applies. While the subscription is down, ``max_age``
    applies again, and L1 is emptied when it (re)connects because messages may have been missed.

    Enter it (``async with``) to start listening for invalidations; without entering, it works
    with the ``max_age`` bound only. It does not own ``backend``.

    Args:
        backend: the shared cache (L2).
        max_age: seconds an L1 entry may be served without a working invalidation channel.
        subscribed_max_age: seconds an L1 entry may be served while subscribed (at least ``max_age``).
        max_entries: L1 size; the least recently used entry goes first.
        redelete_after: seconds after an invalidation when the L2 key is deleted once more, to
            remove a value a loader in another process read before the change and wrote after it.
        channel: the pub/sub channel name.
        clock: the monotonic clock, in seconds; tests pass a fake one.
    """

    def __init__(
        self,
        backend: Cache,
        *,
        max_age: float = 1.0,
        subscribed_max_age: float = 5.0,
        max_entries: int = 10_000,
        redelete_after: float = 0.5,
        channel: str = INVALIDATION_CHANNEL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (max_age > 0 and subscribed_max_age >= max_age):
            raise ValidationError("need 0 < max_age <= subscribed_max_age", field="max_age")
        if max_entries < 1:
            raise ValidationError(f"max_entries must be at least 1, got {max_entries}", field="max_entries")
        self._backend = backend
        self._max_age = max_age
        self._subscribed_max_age = subscribed_max_age
        self._max_entries = max_entries
        self._redelete_after = redelete_after
        self._channel_name = channel
        self._clock = clock
        self._broadcaster = backend if isinstance(backend, InvalidationChannel) else None
        # key -> (value or None for "nothing there", time stored on the clock, (type, decoded) or None)
        self._l1: OrderedDict[str, tuple[bytes | None, float, tuple[type, Any] | None]] = OrderedDict()
        self._versions: dict[str, int] = {}
        self._flights: dict[str, asyncio.Future[bytes | None]] = {}
        self._subscribed = False
        self._bound = max_age  # the bound in force: max_age, or subscribed_max_age while subscribed
        self._tasks: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None
        self.loads = 0  # how many times a loader ran (observability and tests)

    # ------------------------------------------------------------------ lifetime

    async def __aenter__(self) -> Self:
        """Start listening for other processes' invalidations, if the backend broadcasts.

        Waits (up to 5 s) for the subscription to be confirmed so the first requests already
        get the longer bound; if it is not, reads still work under ``max_age``.
        """
        if self._broadcaster is not None and self._listener is None:
            ready = asyncio.Event()
            self._listener = asyncio.create_task(self._listen(ready), name="plexica-cache-invalidations")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready.wait(), 5.0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tasks = [*self._tasks, *([self._listener] if self._listener is not None else [])]
        self._listener = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._set_subscribed(False)
        self._l1.clear()

    @property
    def backend(self) -> Cache:
        """The shared cache (L2)."""
        return self._backend

    @property
    def subscribed(self) -> bool:
        """Whether other processes' invalidations currently reach this one."""
        return self._subscribed

    @property
    def max_age(self) -> float:
        """The bound that applies now: how old an L1 entry may be when served."""
        return self._bound

    def _set_subscribed(self, subscribed: bool) -> None:
        self._subscribed = subscribed
        self._bound = self._subscribed_max_age if subscribed else self._max_age

    # ------------------------------------------------------------------- reads

    async def get_bytes(
        self, key: str, load: Callable[[], Awaitable[bytes | None]], *, ttl: float | None = None
    ) -> bytes | None:
        """Return the bytes at ``key``: from L1, else L2, else ``load()`` (stored in L2 for ``ttl``).

        Concurrent misses of one key share one L2 read and one load; if the load raises, every
        waiter gets the error and nothing is stored.
        """
        entry = self._l1.get(key)
        if entry is not None:
            if self._clock() - entry[1] < self._bound:
                self._l1.move_to_end(key)
                return entry[0]
            del self._l1[key]
        while (flight := self._flights.get(key)) is not None:
            try:
                # Shielded: a waiter being cancelled must not cancel the flight the others wait for.
                return await asyncio.shield(flight)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not flight.cancelled() or (task is not None and task.cancelling()):
                    raise
                # The leader was cancelled, not us: one of the waiters leads a new flight.
        # This caller leads: it loads inline (no task to schedule) and the others await its future.
        flight = asyncio.get_running_loop().create_future()
        self._flights[key] = flight
        try:
            value = await self._fill(key, load, ttl)
        except BaseException as exc:
            self._land(key, flight)
            if isinstance(exc, asyncio.CancelledError):
                flight.cancel()
            else:
                flight.set_exception(exc)
                flight.exception()  # retrieved: a flight nobody else awaited is not "never retrieved"
            raise
        self._land(key, flight)
        flight.set_result(value)
        return value

    async def get(
        self, key: str, cls: type[T], load: Callable[[], Awaitable[T | None]], *, ttl: float | None = None
    ) -> T | None:
        """Like :meth:`get_bytes` for a typed value (attrs class or builtin), stored as JSON.

        L1 also keeps the decoded value, so a warm read decodes nothing; callers share that
        object, so use frozen types (as :class:`~plexica_sdk.types.TenantInfo` is).

        Raises:
            ValidationError: the value at L2 does not structure as ``cls`` (it is then deleted).
        """
        entry = self._l1.get(key)
        if entry is not None and entry[2] is not None and entry[2][0] is cls and self._clock() - entry[1] < self._bound:
            self._l1.move_to_end(key)
            decoded: T = entry[2][1]
            return decoded

        async def load_bytes() -> bytes | None:
            value = await load()
            return None if value is None else _dumps(converter.unstructure(value))

        raw = await self.get_bytes(key, load_bytes, ttl=ttl)
        if raw is None:
            return None
        try:
            decoded = converter.structure(json.loads(raw), cls)
        except Exception as exc:  # a value of an older layout: drop it everywhere, report it
            await self.invalidate(key)
            raise ValidationError(f"cache key {key!r} held a value that is not a {cls.__name__}", field="key") from exc
        current = self._l1.get(key)
        if current is not None and current[0] is raw:  # still the entry these bytes came from
            self._l1[key] = (raw, current[1], (cls, decoded))
        return decoded

    async def get_local(self, key: str, load: Callable[[], Awaitable[T]]) -> T:
        """Return the process-local value at ``key``, from L1 or else ``load()`` (never stored at L2).

        For state derived from versioned L2 entries (a user's admission, a permission subject):
        ``load`` does the versioned reads, and this L1 saves them while the entry is younger than
        :attr:`max_age`. :meth:`invalidate_local` drops the key in every process. A load that an
        invalidation overtakes still answers its caller, but is not remembered.
        """
        entry = self._l1.get(key)
        if entry is not None and entry[2] is not None and entry[2][0] is _Local:
            if self._clock() - entry[1] < self._bound:
                self._l1.move_to_end(key)
                found: T = entry[2][1]
                return found
            del self._l1[key]
        version = self._versions.get(key, 0)
        value = await load()
        if self._versions.get(key, 0) == version:
            self._l1[key] = (None, self._clock(), (_Local, value))
            self._l1.move_to_end(key)
            while len(self._l1) > self._max_entries:
                self._l1.popitem(last=False)
        return value

    def _land(self, key: str, flight: asyncio.Future[bytes | None]) -> None:
        if self._flights.get(key) is flight:  # an invalidation may have dropped it already
            del self._flights[key]

    async def _fill(self, key: str, load: Callable[[], Awaitable[bytes | None]], ttl: float | None) -> bytes | None:
        version = self._versions.get(key, 0)
        value = await self._backend.get(key)
        if value is None:
            self.loads += 1
            value = await load()
            if value is not None and self._versions.get(key, 0) == version:
                await self._backend.set(key, value, ttl=ttl)
        if self._versions.get(key, 0) == version:  # no invalidation while this ran
            self._remember(key, value)
        return value

    def _remember(self, key: str, value: bytes | None) -> None:
        self._l1[key] = (value, self._clock(), None)
        self._l1.move_to_end(key)
        while len(self._l1) > self._max_entries:
            self._l1.popitem(last=False)

    # -------------------------------------------------------------- invalidation

    def forget(self, key: str) -> None:
        """Drop ``key`` from this process's L1 only, and void any load of it now running."""
        self._versions[key] = self._versions.get(key, 0) + 1
        if len(self._versions) > 4 * self._max_entries:  # versions only matter while a load runs
            self._versions = {k: v for k, v in self._versions.items() if k in self._flights}
            self._versions[key] = self._versions.get(key, 0) + 1
        self._l1.pop(key, None)
        self._flights.pop(key, None)

    def forget_all(self) -> None:
        """Drop every L1 entry of this process."""
        for key in [*self._l1, *self._flights]:
            self.forget(key)

    async def invalidate(self, *keys: str) -> None:
        """Drop ``keys`` everywhere: this L1, L2, and (by broadcast) every other process's L1.

        Call it after the change is committed. The L2 key is deleted again ``redelete_after``
        seconds later, in the background, to catch a concurrent loader's late write.
        """
        for key in keys:
            self.forget(key)
        if not keys:
            return
        await self._backend.delete(*keys)
        if self._broadcaster is not None:
            for key in keys:
                await self._broadcaster.publish(self._channel_name, key.encode())
        if self._redelete_after > 0:
            task = asyncio.create_task(self._redelete(keys), name="plexica-cache-redelete")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def invalidate_local(self, *keys: str) -> None:
        """Drop process-local keys (see :meth:`get_local`) here and, by broadcast, everywhere.

        Call it after the versioned L2 state they derive from has changed; L2 is not touched.
        """
        for key in keys:
            self.forget(key)
        if self._broadcaster is not None:
            for key in keys:
                await self._broadcaster.publish(self._channel_name, key.encode())

    async def _redelete(self, keys: tuple[str, ...]) -> None:
        await asyncio.sleep(self._redelete_after)
        for key in keys:
            self.forget(key)
        try:
            await self._backend.delete(*keys)
        except Exception:
            logger.warning("second delete of invalidated cache keys failed", exc_info=True)

    async def _listen(self, ready: asyncio.Event) -> None:
        assert self._broadcaster is not None
        delay = 0.05
        while True:

            def subscribed() -> None:
                self.forget_all()  # anything sent while we were not listening is lost
                self._set_subscribed(True)
                ready.set()

            try:
                async for message in self._broadcaster.listen(self._channel_name, subscribed):
                    delay = 0.05
                    self.forget(message.decode("utf-8", "replace"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("cache invalidation channel lost; retrying", extra={"error": type(exc).__name__})
            self._set_subscribed(False)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


class _Local:
    """The L1 type tag of :meth:`LayeredCache.get_local` entries."""


def _dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


@final
class RequestCache:
    """An L1 dict in front of any :class:`~plexica_sdk.protocols.Cache`, for one request.

    Reads are remembered, misses included, so a missing key is looked up once per request.
    Writes and deletes go through to the backend and update the dict, so the request sees its
    own writes. Entries never expire here: a value read in this request stays as read until the
    request ends, even if its ttl runs out or another process changes it. Build one per request
    and drop it afterwards; it owns nothing and needs no closing.

    Args:
        backend: the shared cache (L2) the reads fall through to.
    """

    def __init__(self, backend: Cache) -> None:
        self._backend = backend
        self._local: dict[str, bytes | None] = {}

    @property
    def backend(self) -> Cache:
        """The shared cache behind this request's dict."""
        return self._backend

    def clear(self) -> None:
        """Forget everything read so far, so the next reads go to the backend again."""
        self._local.clear()

    async def get(self, key: str) -> bytes | None:
        """Return the value of ``key``, asking the backend only the first time in this request."""
        try:
            return self._local[key]
        except KeyError:
            value = self._local[key] = await self._backend.get(key)
            return value

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Store ``value`` in the backend (with ``ttl``) and in this request's dict."""
        await self._backend.set(key, value, ttl=ttl)
        self._local[key] = bytes(value)

    async def delete(self, *keys: str) -> int:
        """Delete ``keys`` from the backend and remember that they are gone."""
        for key in keys:  # forgotten first, so a failing backend cannot leave a stale copy here
            self._local.pop(key, None)
        deleted = await self._backend.delete(*keys)
        self._local.update(dict.fromkeys(keys))
        return deleted

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        """Increment the counter in the backend, where other requests count too, and remember the result."""
        self._local.pop(key, None)
        value = await self._backend.incr(key, amount, ttl=ttl)
        self._local[key] = str(value).encode("ascii")
        return value

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with ``prefix`` from the backend and from this request's dict."""
        self._local = {key: value for key, value in self._local.items() if not key.startswith(prefix)}
        return await self._backend.delete_prefix(prefix)
