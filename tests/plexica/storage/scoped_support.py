"""A small world for the confinement tests: two tenants, two plugins, both layouts, one backend.

Plugin ``p`` (namespaces ``docs``, ``images``) and plugin ``q`` (``docs``) live in tenants ``a``
and ``b``. Every test gets fresh tenant slugs (and a fresh shared bucket in the prefix layout),
so runs against the same S3 server never meet.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from typing import Any

import attrs

from plexica.storage import PluginObjectStore, StorageLayout
from plexica_sdk.protocols import ObjectStore
from plexica_sdk.types import ObjectInfo, StorageNamespace

P_NAMESPACES = (
    StorageNamespace(name="docs"),
    StorageNamespace(name="images", max_bytes=64 * 1024, content_types=("image/*",)),
)
Q_NAMESPACES = (StorageNamespace(name="docs"),)


def slug() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


async def chunks_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def read_all(stream: AsyncIterable[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


@attrs.define
class Recording:
    """An ``ObjectStore`` that forwards to a real one and records every (bucket, key or prefix) it is asked for."""

    store: ObjectStore
    calls: list[tuple[str, str, str]] = attrs.field(factory=list)

    async def create_bucket(self, bucket: str) -> None:
        self.calls.append(("create_bucket", bucket, ""))
        await self.store.create_bucket(bucket)

    async def delete_bucket(self, bucket: str, *, force: bool = False) -> None:
        self.calls.append(("delete_bucket", bucket, ""))
        await self.store.delete_bucket(bucket, force=force)

    async def put(
        self, bucket: str, key: str, data: bytes | AsyncIterable[bytes], *, content_type: str | None = None
    ) -> ObjectInfo:
        self.calls.append(("put", bucket, key))
        return await self.store.put(bucket, key, data, content_type=content_type)

    async def get(self, bucket: str, key: str) -> bytes:
        self.calls.append(("get", bucket, key))
        return await self.store.get(bucket, key)

    async def stream(self, bucket: str, key: str) -> AsyncIterator[bytes]:
        self.calls.append(("stream", bucket, key))
        return await self.store.stream(bucket, key)

    async def head(self, bucket: str, key: str) -> ObjectInfo:
        self.calls.append(("head", bucket, key))
        return await self.store.head(bucket, key)

    async def delete(self, bucket: str, key: str) -> None:
        self.calls.append(("delete", bucket, key))
        await self.store.delete(bucket, key)

    async def list(self, bucket: str, prefix: str = "") -> Sequence[ObjectInfo]:
        self.calls.append(("list", bucket, prefix))
        return await self.store.list(bucket, prefix)

    async def presigned_url(self, bucket: str, key: str, *, expires_in: int = 3600, method: str = "GET") -> str:
        self.calls.append(("presign", bucket, key))
        return await self.store.presigned_url(bucket, key, expires_in=expires_in, method=method)


@attrs.define
class World:
    """Tenants ``a`` and ``b`` with plugins ``p`` and ``q`` on one backend, in one layout."""

    store: ObjectStore
    layout: StorageLayout
    a: str
    b: str
    uploaded: list[tuple[str, str, ObjectInfo]] = attrs.field(factory=list)

    def objects(self, tenant: str, plugin: str, store: Any = None) -> PluginObjectStore:
        async def uploaded(info: ObjectInfo) -> None:
            self.uploaded.append((tenant, plugin, info))

        return PluginObjectStore(
            store if store is not None else self.store,
            self.layout,
            slug=tenant,
            plugin=plugin,
            namespaces=P_NAMESPACES if plugin == "p" else Q_NAMESPACES,
            on_uploaded=uploaded,
        )

    def backend_key(self, tenant: str, plugin: str, key: str) -> tuple[str, str]:
        """Where the plugin's ``key`` must land: (bucket, backend key)."""
        return self.layout.bucket(tenant), f"{self.layout.plugin_prefix(tenant, plugin)}{key}"
