"""Object storage: a directory per bucket by default, S3 (or MinIO, SeaweedFS) in production.

The host builds one store with :func:`create_object_store` and enters it on the lifespan's exit
stack. Tenants get a bucket each (``tenant-{slug}``) or a prefix of a shared one
(:class:`StorageLayout`); plugins see only a :class:`PluginObjectStore` confined to their
namespaces in one tenant. Both stores enforce the same bucket and key rules and stream in both
directions, so code tested on the local store behaves the same on S3.
"""

from __future__ import annotations

from plexica.storage.base import ManagedObjectStore
from plexica.storage.factory import create_object_store
from plexica.storage.layout import ObjectOwner, StorageLayout
from plexica.storage.local import LocalObjectStore
from plexica.storage.rules import validate_bucket, validate_key
from plexica.storage.s3 import S3ObjectStore
from plexica.storage.scoped import PluginObjectStore

__all__ = [
    "LocalObjectStore",
    "ManagedObjectStore",
    "ObjectOwner",
    "PluginObjectStore",
    "S3ObjectStore",
    "StorageLayout",
    "create_object_store",
    "validate_bucket",
    "validate_key",
]
