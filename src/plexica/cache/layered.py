"""A per-request first level in front of a shared cache.

One permission check can read the same keys many times (a user's roles, a role's permissions);
a :class:`RequestCache` answers the repeats from a plain dict so only the first read of each key
goes to Redis. It lives as long as one request, which is also how stale its answers may be.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, final

if TYPE_CHECKING:
    from plexica_sdk.protocols import Cache

__all__ = ["RequestCache"]


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
