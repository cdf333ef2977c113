"""What the host needs of an object store beyond the SDK's ``ObjectStore``: a lifetime.

The SDK's :class:`~plexica_sdk.protocols.ObjectStore` is what plugins see; the host also opens
and closes the backend on the lifespan's exit stack, so every store the factory builds
satisfies :class:`ManagedObjectStore`.
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from plexica_sdk.protocols import ObjectStore

__all__ = ["ManagedObjectStore"]


@runtime_checkable
class ManagedObjectStore(ObjectStore, Protocol):
    """An :class:`~plexica_sdk.protocols.ObjectStore` that is also an async context manager.

    Entering opens whatever the backend needs (an S3 client and its connection pool); leaving
    releases it.
    """

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
