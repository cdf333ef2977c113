"""The interfaces a plugin receives or may implement.

``Cache`` and ``ObjectStore`` are the backends (the host ships in-process and real-service
implementations; a plugin may provide another through a ``plexica_*_backend`` hook). ``Host`` is
the plugin's handle on the host: embedded plugins get the host's own implementation, remote
plugins an RPC client with the same methods. A ``Host`` acts for one (tenant, plugin) pair only:
its cache and objects are views that cannot name anything outside that pair.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, runtime_checkable

from plexica_sdk.types import Decision, Event, ObjectInfo, TenantContext

__all__ = ["Cache", "Host", "ObjectStore", "PluginObjects"]


@runtime_checkable
class Cache(Protocol):
    """A key-value cache with TTLs. Keys are full keys (``tenant:{slug}:...``); values are bytes."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None: ...

    async def delete(self, *keys: str) -> int: ...

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        """Add ``amount`` and return the new value; ``ttl`` applies when the key is created."""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with ``prefix`` and return how many went."""
        ...


@runtime_checkable
class ObjectStore(Protocol):
    """Buckets of objects (S3 semantics). Tenant buckets are named ``tenant-{slug}``."""

    async def create_bucket(self, bucket: str) -> None:
        """Create ``bucket``; creating one that exists is not an error."""
        ...

    async def delete_bucket(self, bucket: str, *, force: bool = False) -> None:
        """Delete ``bucket``; ``force`` deletes its objects first. A missing bucket is not an error."""
        ...

    async def put(
        self, bucket: str, key: str, data: bytes | AsyncIterable[bytes], *, content_type: str | None = None
    ) -> ObjectInfo:
        """Store ``data``: bytes, or an async iterator of chunks streamed without buffering it whole.

        If the iterator raises, no object appears (a previous one stays) and the error propagates.
        """
        ...

    async def get(self, bucket: str, key: str) -> bytes:
        """Return the object's bytes. Raises ``NotFoundError`` when it does not exist."""
        ...

    async def stream(self, bucket: str, key: str) -> AsyncIterator[bytes]:
        """Return the object's bytes as an async iterator of chunks.

        Raises ``NotFoundError`` (from this call, before any chunk) when it does not exist.
        """
        ...

    async def head(self, bucket: str, key: str) -> ObjectInfo:
        """Return the object's metadata. Raises ``NotFoundError`` when it does not exist."""
        ...

    async def delete(self, bucket: str, key: str) -> None: ...

    async def list(self, bucket: str, prefix: str = "") -> Sequence[ObjectInfo]: ...

    async def presigned_url(self, bucket: str, key: str, *, expires_in: int = 3600, method: str = "GET") -> str: ...


@runtime_checkable
class PluginObjects(Protocol):
    """One plugin's objects in one tenant: what ``host.objects`` is.

    Keys are ``{namespace}/{rest}`` where ``namespace`` is one the plugin declared
    (``PluginManifest.storage`` or ``plexica_storage_namespaces``). Where they live (the tenant's
    bucket, or the tenant's prefix of a shared bucket) is the host's business: no method takes a
    bucket, and no key can reach another tenant's or another plugin's objects.

    Every method raises ``ValidationError`` when the key is unsafe (``..``/``.`` segments, a
    leading ``/``, backslashes, control characters, over 1,024 UTF-8 bytes) or outside the
    plugin's namespaces, or when an upload breaks its namespace's size or content-type limit; and
    ``NotFoundError`` when it reads an object that does not exist.
    """

    async def put(self, key: str, data: bytes | AsyncIterable[bytes], *, content_type: str | None = None) -> ObjectInfo:
        """Store ``data`` (bytes, or an async iterator of chunks, streamed) under ``key``."""
        ...

    async def get(self, key: str) -> bytes:
        """Return the whole object; use :meth:`stream` for large ones."""
        ...

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        """Return the object's bytes as an async iterator of chunks (the object is looked up first)."""
        ...

    async def head(self, key: str) -> ObjectInfo: ...

    async def delete(self, key: str) -> None:
        """Delete the object; a missing object is not an error."""
        ...

    async def list(self, prefix: str = "") -> Sequence[ObjectInfo]:
        """This plugin's objects whose keys start with ``prefix``; keys as the plugin names them."""
        ...

    async def presigned_url(self, key: str, *, expires_in: int = 3600, method: str = "GET") -> str:
        """A URL that lets its holder GET or PUT this one object until it expires."""
        ...


@runtime_checkable
class Host(Protocol):
    """What a plugin may ask of the host, always for the current tenant context."""

    @property
    def plugin(self) -> str:
        """The name of the plugin this handle belongs to."""
        ...

    @property
    def tenant(self) -> TenantContext:
        """The tenant context this handle acts in."""
        ...

    def session(self) -> AbstractAsyncContextManager[Any]:
        """A SQLAlchemy ``AsyncSession`` bound to the tenant's schema, committed on success."""
        ...

    async def publish(self, event_type: str, data: Any, *, subject: str | None = None, session: Any = None) -> Event:
        """Publish one of this plugin's event types for the current tenant.

        Without ``session`` the event goes to the bus at once. With ``session`` (one from
        :meth:`session`) it is validated at once and written to the transactional outbox in that
        session's transaction: it is published after the commit, and never if the transaction
        rolls back.

        Raises:
            EventError: unknown type, another plugin's type, or a payload failing its schema
                (nothing is sent or written).
        """
        ...

    async def mark_processed(self, event: Event, *, session: Any) -> bool:
        """Record that this plugin handled ``event`` in this tenant, in ``session``'s transaction.

        Returns ``False`` when it was already recorded: the event is a redelivery and the
        handler should do nothing. Because the record commits or rolls back with the handler's own
        writes, a handler that checks it first is idempotent in effect::

            async with host.session() as session:
                if not await host.mark_processed(event, session=session):
                    return
                ...  # the handler's writes
        """
        ...

    async def authorize(self, permission: str, resource: Mapping[str, Any] | None = None) -> Decision:
        """Decide whether the current user holds ``permission`` (on ``resource``)."""
        ...

    async def require(self, permission: str, resource: Mapping[str, Any] | None = None) -> None:
        """Raise ``PermissionDeniedError`` unless the current user holds ``permission``."""
        ...

    @property
    def cache(self) -> Cache:
        """The cache; keys are prefixed with the tenant's ``tenant:{slug}:plugin:{name}:``."""
        ...

    @property
    def objects(self) -> PluginObjects:
        """This plugin's objects in this tenant; nothing else is reachable through it."""
        ...

    async def config(self) -> Mapping[str, Any]:
        """This plugin's configuration for this tenant, validated against ``config_schema``.

        Defaults from the schema are filled in; an edit through the CLI or the API is seen at once.
        """
        ...
