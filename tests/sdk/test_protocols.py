"""The protocols are runtime-checkable: a plugin's own backend is recognised by its methods alone."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from plexica_sdk.protocols import Cache, Host, ObjectStore
from plexica_sdk.types import Decision, Event, ObjectInfo, TenantContext


class DictCache:
    """A complete cache written by a plugin, without inheriting anything."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    async def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        self.data[key] = value

    async def delete(self, *keys: str) -> int:
        return sum(self.data.pop(key, None) is not None for key in keys)

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        value = int(self.data.get(key, b"0")) + amount
        self.data[key] = str(value).encode()
        return value

    async def delete_prefix(self, prefix: str) -> int:
        return await self.delete(*[key for key in self.data if key.startswith(prefix)])


class HalfCache:
    """Lacks ``incr`` and ``delete_prefix``."""

    async def get(self, key: str) -> bytes | None:
        return None

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        return None

    async def delete(self, *keys: str) -> int:
        return 0


class NullStore:
    async def create_bucket(self, bucket: str) -> None:
        return None

    async def delete_bucket(self, bucket: str, *, force: bool = False) -> None:
        return None

    async def put(
        self, bucket: str, key: str, data: bytes | AsyncIterable[bytes], *, content_type: str | None = None
    ) -> ObjectInfo:
        return ObjectInfo(key=key, size=len(data) if isinstance(data, bytes) else 0)

    async def get(self, bucket: str, key: str) -> bytes:
        return b""

    async def stream(self, bucket: str, key: str) -> AsyncIterator[bytes]:
        async def empty() -> AsyncIterator[bytes]:
            chunks: tuple[bytes, ...] = ()
            for chunk in chunks:
                yield chunk

        return empty()

    async def head(self, bucket: str, key: str) -> ObjectInfo:
        return ObjectInfo(key=key, size=0)

    async def delete(self, bucket: str, key: str) -> None:
        return None

    async def list(self, bucket: str, prefix: str = "") -> Sequence[ObjectInfo]:
        return []

    async def presigned_url(self, bucket: str, key: str, *, expires_in: int = 3600, method: str = "GET") -> str:
        return f"memory://{bucket}/{key}"


class FakeHost:
    plugin = "notes"
    tenant = TenantContext(tenant_id="t-1", slug="acme", schema="tenant_acme")
    cache: Cache = DictCache()
    objects: ObjectStore = NullStore()

    def session(self) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError

    async def publish(self, event_type: str, data: Any, *, subject: str | None = None, session: Any = None) -> Event:
        return Event(type=event_type, source=self.plugin, data=data, subject=subject)

    async def mark_processed(self, event: Event, *, session: Any) -> bool:
        return True

    async def authorize(self, permission: str, resource: Mapping[str, Any] | None = None) -> Decision:
        return Decision(allowed=False, reason="test")

    async def require(self, permission: str, resource: Mapping[str, Any] | None = None) -> None:
        return None

    async def config(self) -> Mapping[str, Any]:
        return {}


@pytest.mark.parametrize(
    ("obj", "protocol"),
    [(DictCache(), Cache), (NullStore(), ObjectStore), (FakeHost(), Host)],
    ids=["cache", "object-store", "host"],
)
def test_a_class_with_every_method_satisfies_the_protocol(obj: object, protocol: type) -> None:
    assert isinstance(obj, protocol)


@pytest.mark.parametrize(
    ("obj", "protocol"),
    [(HalfCache(), Cache), (DictCache(), ObjectStore), (object(), Host)],
    ids=["cache-missing-methods", "cache-is-no-object-store", "object-is-no-host"],
)
def test_a_class_missing_methods_does_not_satisfy_the_protocol(obj: object, protocol: type) -> None:
    assert not isinstance(obj, protocol)
