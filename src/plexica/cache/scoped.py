"""A view of a cache confined to one key prefix, which is how tenants and plugins share Redis.

The host hands each plugin ``PrefixedCache(cache, "tenant:{slug}:plugin:{name}:")``: the plugin
names keys freely, and even ``delete_prefix("")`` only reaches its own namespace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, final

from plexica_sdk.errors import ValidationError

if TYPE_CHECKING:
    from plexica_sdk.protocols import Cache

__all__ = ["PrefixedCache"]


@final
class PrefixedCache:
    """A :class:`~plexica_sdk.protocols.Cache` that puts ``prefix`` before every key.

    End the prefix with a separator (``tenant:acme:``): keys are joined by plain
    concatenation, so ``tenant:acme`` would also reach into ``tenant:acme-corp:``'s keys. It does
    not own the underlying cache and needs no closing.

    Args:
        cache: the cache shared by every namespace.
        prefix: the namespace, e.g. ``tenant:{slug}:plugin:{name}:``.

    Raises:
        ValidationError: ``prefix`` is empty; an empty one would hand out the whole cache.
    """

    def __init__(self, cache: Cache, prefix: str) -> None:
        if not prefix:
            raise ValidationError("a cache prefix must not be empty", field="prefix")
        self._cache = cache
        self._prefix = prefix

    def __repr__(self) -> str:
        return f"<PrefixedCache {self._prefix!r}>"

    @property
    def prefix(self) -> str:
        """The namespace every key of this view starts with in the underlying cache."""
        return self._prefix

    def scoped(self, prefix: str) -> PrefixedCache:
        """Return a narrower view, ``prefix`` appended to this one's (a plugin's sub-namespace)."""
        return PrefixedCache(self._cache, self._prefix + prefix)

    async def get(self, key: str) -> bytes | None:
        """Return the value of ``key`` in this namespace, or ``None``."""
        return await self._cache.get(self._prefix + key)

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` in this namespace."""
        await self._cache.set(self._prefix + key, value, ttl=ttl)

    async def delete(self, *keys: str) -> int:
        """Delete ``keys`` of this namespace and return how many existed."""
        return await self._cache.delete(*(self._prefix + key for key in keys))

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        """Add ``amount`` to the counter ``key`` of this namespace and return the new value."""
        return await self._cache.incr(self._prefix + key, amount, ttl=ttl)

    async def delete_prefix(self, prefix: str) -> int:
        """Delete this namespace's keys starting with ``prefix`` (``""``: the whole namespace)."""
        return await self._cache.delete_prefix(self._prefix + prefix)
