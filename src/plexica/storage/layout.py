"""Where a tenant's objects live: a bucket per tenant, or a prefix of one shared bucket.

``storage.layout = "bucket"`` gives each tenant the bucket ``tenant-{slug}``; plugin ``P``'s key
``docs/a.txt`` is the object ``P/docs/a.txt`` there. ``"prefix"`` puts every tenant in the one
bucket ``storage.shared_bucket`` under ``tenant-{slug}/``: the same key is
``tenant-{slug}/P/docs/a.txt``. S3 accounts cap their buckets (10,000 by default), so the
prefix layout is the one for many tenants; isolation is the same in both, because plugins never
name a bucket or a full key (:class:`~plexica.storage.scoped.PluginObjectStore` builds them).

The layout is chosen once per deployment: switching it does not move existing objects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol, final, runtime_checkable

import attrs

from plexica.storage.rules import validate_bucket
from plexica_sdk.errors import NotFoundError

if TYPE_CHECKING:
    from plexica.settings import StorageSettings
    from plexica_sdk.protocols import ObjectStore

__all__ = ["DEFAULT_MAX_OBJECT_BYTES", "ObjectOwner", "StorageLayout"]

#: The host's default cap on one object (``storage.max_object_bytes``).
DEFAULT_MAX_OBJECT_BYTES = 100 * 1024 * 1024


@runtime_checkable
class _PrefixDeleting(Protocol):
    async def delete_prefix(self, bucket: str, prefix: str) -> int: ...


@attrs.frozen(kw_only=True)
class ObjectOwner:
    """Whose a backend object is: the tenant, the plugin, and the key as the plugin names it."""

    slug: str
    plugin: str
    key: str


@final
@attrs.frozen(kw_only=True)
class StorageLayout:
    """The ``storage.layout`` switch and what follows from it: bucket names and key prefixes."""

    layout: Literal["bucket", "prefix"] = "bucket"
    shared_bucket: str = attrs.field(default="plexica", validator=lambda _i, _a, v: validate_bucket(v))
    max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES

    @classmethod
    def from_settings(cls, settings: StorageSettings) -> StorageLayout:
        """The layout the ``storage`` settings choose.

        Raises:
            ValidationError: ``shared_bucket`` is not a valid bucket name.
        """
        return cls(
            layout=settings.layout, shared_bucket=settings.shared_bucket, max_object_bytes=settings.max_object_bytes
        )

    def bucket(self, slug: str) -> str:
        """The bucket holding tenant ``slug``'s objects."""
        return self.shared_bucket if self.layout == "prefix" else f"tenant-{slug}"

    def tenant_prefix(self, slug: str) -> str:
        """What every backend key of tenant ``slug`` starts with (``""`` in the bucket layout)."""
        return f"tenant-{slug}/" if self.layout == "prefix" else ""

    def plugin_prefix(self, slug: str, plugin: str) -> str:
        """What every backend key of ``plugin`` in tenant ``slug`` starts with."""
        return f"{self.tenant_prefix(slug)}{plugin}/"

    def owner(self, bucket: str, key: str) -> ObjectOwner | None:
        """Who owns backend object ``bucket``/``key``; ``None``: no tenant's plugin does.

        The host uses it to serve a local presigned PUT on behalf of the owning plugin.
        """
        if self.layout == "prefix":
            if bucket != self.shared_bucket or not key.startswith("tenant-"):
                return None
            tenant, _, key = key.partition("/")
        else:
            tenant = bucket
        if not tenant.startswith("tenant-"):
            return None
        plugin, slash, rest = key.partition("/")
        if not slash or not plugin or not rest:
            return None
        return ObjectOwner(slug=tenant.removeprefix("tenant-"), plugin=plugin, key=rest)

    async def create_tenant(self, store: ObjectStore, slug: str) -> None:
        """Make room for a new tenant: its bucket, or (prefix layout) the shared bucket. Idempotent."""
        await store.create_bucket(self.bucket(slug))

    async def delete_tenant(self, store: ObjectStore, slug: str) -> int:
        """Remove every object of tenant ``slug`` (and its bucket in the bucket layout). Idempotent.

        Returns how many objects the prefix layout deleted (``0`` in the bucket layout, where the
        bucket goes whole). A store without ``delete_prefix`` is emptied key by key.
        """
        if self.layout == "bucket":
            await store.delete_bucket(self.bucket(slug), force=True)
            return 0
        prefix = self.tenant_prefix(slug)
        try:
            if isinstance(store, _PrefixDeleting):
                return await store.delete_prefix(self.shared_bucket, prefix)
            found = await store.list(self.shared_bucket, prefix)
            for info in found:
                await store.delete(self.shared_bucket, info.key)
            return len(found)
        except NotFoundError:  # no shared bucket: nothing of anyone's to delete
            return 0
