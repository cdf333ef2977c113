"""What the host needs of a cache beyond the SDK's ``Cache``: a lifetime it can enter and leave.

The SDK's :class:`~plexica_sdk.protocols.Cache` is what plugins see; the host also has to open
and close the backend on the lifespan's exit stack, so every cache the factory builds satisfies
:class:`ManagedCache`. The ttl checks live here so that every backend rejects the same input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from plexica_sdk.errors import ValidationError
from plexica_sdk.protocols import Cache

__all__ = ["ManagedCache", "MultiGet", "get_many", "resolve_ttl"]


@runtime_checkable
class MultiGet(Protocol):
    """A cache that reads many keys in one round trip (Redis ``MGET``; the in-process cache)."""

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...


async def get_many(cache: Cache, keys: Sequence[str]) -> list[bytes | None]:
    """The values of ``keys``: one round trip when the cache can (:class:`MultiGet`), else one each.

    The request path reads its versioned state this way, so a cold L1 costs one round trip.
    """
    if isinstance(cache, MultiGet):
        return await cache.get_many(keys)
    return [await cache.get(key) for key in keys]


@runtime_checkable
class ManagedCache(Cache, Protocol):
    """A :class:`~plexica_sdk.protocols.Cache` that is also an async context manager.

    Entering opens whatever the backend needs (a connection pool); leaving releases it.
    """

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def resolve_ttl(ttl: float | None, default: float | None) -> float | None:
    """Return the ttl to apply: ``ttl``, else the cache's ``default`` (``None``: never expires).

    Raises:
        ValidationError: the ttl is not a finite number above zero. Redis refuses ``PX 0`` and a
            negative ttl would be an instant delete in disguise, so both backends refuse them.
    """
    effective = default if ttl is None else ttl
    if effective is not None and not (math.isfinite(effective) and effective > 0):
        raise ValidationError(f"cache ttl must be a finite number of seconds above 0, got {effective!r}", field="ttl")
    return effective
