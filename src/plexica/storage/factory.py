"""Build the object store the settings ask for; the caller enters it on the lifespan's exit stack."""

from __future__ import annotations

from typing import TYPE_CHECKING

from plexica.storage.local import LocalObjectStore
from plexica.storage.s3 import S3ObjectStore

if TYPE_CHECKING:
    from pathlib import Path

    from plexica.settings import StorageSettings
    from plexica.storage.base import ManagedObjectStore

__all__ = ["create_object_store"]


def create_object_store(
    settings: StorageSettings,
    data_dir: Path,
    *,
    signing_key: bytes | None = None,
) -> ManagedObjectStore:
    """Return S3 when ``settings.backend`` is ``"s3"``, else files under ``data_dir / "objects"``.

    Connects nothing; entering the result opens it. Usage::

        objects = await stack.enter_async_context(create_object_store(settings.storage, settings.data_dir))

    Args:
        settings: the storage section of the host settings.
        data_dir: the host's data directory, home of the local store.
        signing_key: the local store's presigned-URL key; pass one derived from the host's
            secret so URLs outlive the process. ``None``: a random key per process.

    Raises:
        MissingDependencyError: S3 is configured but ``aioboto3`` is not installed.
        ValidationError: ``settings.bucket_prefix`` or ``signing_key`` is invalid.
    """
    if settings.backend == "s3":
        return S3ObjectStore(
            endpoint_url=settings.s3_endpoint,
            region=settings.s3_region,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            bucket_prefix=settings.bucket_prefix,
            health_bucket=settings.shared_bucket,
        )
    return LocalObjectStore(data_dir / "objects", signing_key=signing_key)
