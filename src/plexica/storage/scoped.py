"""``host.objects``: one plugin's objects in one tenant, confined by construction.

A :class:`PluginObjectStore` holds a backend store, a tenant slug, a plugin name and the
plugin's declared namespaces. Plugins name keys ``{namespace}/{rest}``; the store alone turns
them into the backend's bucket and key (:class:`~plexica.storage.layout.StorageLayout`), after
checking them, so no key a plugin can write names another tenant's or another plugin's object:

* the key passes :func:`~plexica.storage.rules.validate_key` (no ``..``/``.`` segments, leading
  ``/``, backslash, control character, lone surrogate, over 1,024 bytes);
* its first segment is one of the plugin's namespaces, and there is something after it;
* the full backend key (``[tenant-{slug}/]{plugin}/{key}``) still fits S3's 1,024 bytes.

The backend prefix always ends in ``/`` and plugin and tenant names hold no ``/``, so
``notes/`` never matches ``notes-x/`` and ``tenant-acme/`` never matches ``tenant-acme-2/``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, final

import attrs

from plexica.storage.rules import DEFAULT_CONTENT_TYPE, MAX_KEY_BYTES, validate_key
from plexica_sdk.errors import ValidationError
from plexica_sdk.types import ObjectInfo, StorageNamespace

if TYPE_CHECKING:
    from plexica.storage.layout import StorageLayout
    from plexica_sdk.protocols import ObjectStore

__all__ = ["ObjectTooLargeError", "OnUploaded", "PluginObjectStore", "capped", "content_type_allowed"]

#: Awaited with the plugin-side ``ObjectInfo`` after every successful put (the host calls the
#: owning plugin's ``plexica_object_uploaded`` hook from it).
OnUploaded = Callable[[ObjectInfo], Awaitable[None]]


def content_type_allowed(content_type: str, patterns: Iterable[str]) -> bool:
    """Whether ``content_type`` (parameters ignored, any case) matches one of ``patterns``.

    A pattern is a type (``text/plain``), a family (``image/*``) or ``*/*``; no patterns: any type.
    """
    patterns = tuple(patterns)
    if not patterns:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return any(fnmatch.fnmatchcase(media, pattern.strip().lower()) for pattern in patterns)


class ObjectTooLargeError(ValidationError):
    """An object is larger than its ``limit`` (``field="size"``); the presigned PUT route answers 413."""

    def __init__(self, key: str, limit: int) -> None:
        super().__init__(f"object {key[:64]!r} exceeds its limit of {limit} bytes", field="size")
        self.limit = limit


async def capped(data: AsyncIterable[bytes], limit: int, key: str) -> AsyncIterator[bytes]:
    """Pass ``data`` through, raising once more than ``limit`` bytes have gone by.

    The chunk that crosses the limit is never passed on; the backend sees the exception
    mid-upload and leaves no object (see ``ObjectStore.put``).

    Raises:
        ObjectTooLargeError: more than ``limit`` bytes.
    """
    total = 0
    async for chunk in data:
        total += len(chunk)
        if total > limit:
            raise ObjectTooLargeError(key, limit)
        yield chunk


@final
class PluginObjectStore:
    """A :class:`~plexica_sdk.protocols.PluginObjects` for one (tenant, plugin).

    Args:
        store: the backend holding every tenant's objects.
        layout: where tenants live in it (bucket per tenant or shared bucket).
        slug: the tenant.
        plugin: the plugin whose objects these are.
        namespaces: the plugin's declared namespaces (their limits apply to puts).
        on_uploaded: awaited after each successful put; its failure is the caller's to report
            (the host logs it and the upload stands).
    """

    def __init__(
        self,
        store: ObjectStore,
        layout: StorageLayout,
        *,
        slug: str,
        plugin: str,
        namespaces: Iterable[StorageNamespace],
        on_uploaded: OnUploaded | None = None,
    ) -> None:
        self._store = store
        self._layout = layout
        self._bucket = layout.bucket(slug)
        self._prefix = layout.plugin_prefix(slug, plugin)
        self._namespaces: Mapping[str, StorageNamespace] = {ns.name: ns for ns in namespaces}
        self._on_uploaded = on_uploaded
        self._plugin = plugin
        self._slug = slug

    def __repr__(self) -> str:
        return f"<PluginObjectStore {self._plugin!r} in tenant {self._slug!r} ({self._bucket}/{self._prefix})>"

    @property
    def namespaces(self) -> Sequence[StorageNamespace]:
        """The namespaces this plugin may write to."""
        return tuple(self._namespaces.values())

    # ------------------------------------------------------------ the protocol

    async def put(self, key: str, data: bytes | AsyncIterable[bytes], *, content_type: str | None = None) -> ObjectInfo:
        """Store ``data`` under ``key`` within the namespace's limits; see ``PluginObjects.put``.

        Raises:
            ValidationError: unsafe key, undeclared namespace, a content type the namespace
                refuses (``field="content_type"``), or more bytes than its ``max_bytes`` or the
                host's ``storage.max_object_bytes`` (``field="size"``; a streamed upload is cut
                off at the limit and leaves no object).
        """
        namespace, full = self._resolve(key)
        content_type = content_type or DEFAULT_CONTENT_TYPE
        if not content_type_allowed(content_type, namespace.content_types):
            allowed = ", ".join(namespace.content_types)
            raise ValidationError(
                f"namespace {namespace.name!r} accepts {allowed}, not {content_type!r}", field="content_type"
            )
        limit = self._limit_of(namespace)
        body: bytes | AsyncIterable[bytes]
        if isinstance(data, bytes | bytearray | memoryview):
            if len(data) > limit:
                raise ObjectTooLargeError(key, limit)
            body = data
        else:
            body = capped(data, limit, key)
        info = self._outward(await self._store.put(self._bucket, full, body, content_type=content_type))
        if self._on_uploaded is not None:
            await self._on_uploaded(info)
        return info

    def limit_for(self, key: str) -> int:
        """The most bytes ``key`` may hold: its namespace's ``max_bytes``, else the host's limit.

        Raises:
            ValidationError: unsafe key or undeclared namespace.
        """
        return self._limit_of(self._resolve(key)[0])

    def _limit_of(self, namespace: StorageNamespace) -> int:
        return namespace.max_bytes if namespace.max_bytes is not None else self._layout.max_object_bytes

    async def get(self, key: str) -> bytes:
        """Return the whole object. Raises ``NotFoundError``."""
        return await self._store.get(self._bucket, self._resolve(key)[1])

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        """Return the object as an async iterator of chunks. Raises ``NotFoundError`` before any chunk."""
        return await self._store.stream(self._bucket, self._resolve(key)[1])

    async def head(self, key: str) -> ObjectInfo:
        """Return the object's metadata, with the key as the plugin names it. Raises ``NotFoundError``."""
        return self._outward(await self._store.head(self._bucket, self._resolve(key)[1]))

    async def delete(self, key: str) -> None:
        """Delete the object; a missing object is not an error."""
        await self._store.delete(self._bucket, self._resolve(key)[1])

    async def list(self, prefix: str = "") -> Sequence[ObjectInfo]:
        """This plugin's objects in this tenant whose keys start with ``prefix``, keys as the plugin names them.

        ``prefix`` is matched literally (no normalisation) under this plugin's own backend
        prefix, so it can narrow the listing but never widen it.

        Raises:
            ValidationError: ``prefix`` holds what no key may (a leading ``/``, a backslash, a
                control character, a ``.``/``..`` segment before its last, over 1,024 bytes).
        """
        if prefix:
            # Any prefix of a valid key is accepted: its last segment may be a partial one ("docs/.").
            validate_key(prefix + "x")
        found = await self._store.list(self._bucket, self._prefix + prefix)
        return [self._outward(info) for info in found if info.key.startswith(self._prefix)]

    async def presigned_url(self, key: str, *, expires_in: int = 3600, method: str = "GET") -> str:
        """A URL for this one object (GET or PUT) until ``expires_in`` seconds from now.

        The URL names the backend bucket and key, so its holder reaches that object only. A
        PUT through an S3 URL bypasses the namespace limits (S3 presigned PUTs cannot carry
        them); the local store's PUT route enforces them and calls ``plexica_object_uploaded``.

        Raises:
            ValidationError: unsafe key, undeclared namespace, a method other than GET or PUT,
                or ``expires_in`` outside 1..604800.
        """
        full = self._resolve(key)[1]
        return await self._store.presigned_url(self._bucket, full, expires_in=expires_in, method=method)

    # ---------------------------------------------------------------- helpers

    def _resolve(self, key: str) -> tuple[StorageNamespace, str]:
        """The namespace of ``key`` and the backend key it stands for.

        Raises:
            ValidationError: unsafe key, no declared namespace, or too long once prefixed.
        """
        validate_key(key)
        name, slash, rest = key.partition("/")
        namespace = self._namespaces.get(name)
        if namespace is None or not slash or not rest:
            declared = ", ".join(sorted(self._namespaces)) or "none"
            raise ValidationError(
                f"object key {key[:64]!r} must be '{{namespace}}/{{name}}' in a namespace of plugin "
                f"{self._plugin!r} (declared: {declared})",
                field="key",
            )
        full = self._prefix + key
        if len(full.encode("utf-8")) > MAX_KEY_BYTES:
            raise ValidationError(
                f"object key {key[:64]!r} is too long: {MAX_KEY_BYTES} bytes at most once stored as "
                f"'{self._prefix}...'",
                field="key",
            )
        return namespace, full

    def _outward(self, info: ObjectInfo) -> ObjectInfo:
        return attrs.evolve(info, key=info.key.removeprefix(self._prefix))
