"""What the host needs of a cache beyond the SDK's ``Cache``: a lifetime it can enter and leave.

The SDK's :class:`~plexica_sdk.protocols.Cache` is what plugins see; the host also has to open
and close the backend on the lifespan's exit stack, so every cache the factory builds satisfies
:class:`ManagedCache`. The ttl checks live here so that every backend rejects the same input.
"""

from __future__ import annotations

import math
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from plexica_sdk.errors import ValidationError
from plexica_sdk.protocols import Cache

__all__ = ["ManagedCache", "resolve_ttl"]


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
