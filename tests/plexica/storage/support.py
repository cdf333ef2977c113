"""Helpers the storage tests share: bucket names and following presigned URLs."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import httpx2

from plexica.storage import LocalObjectStore, ManagedObjectStore

#: The local store's signing key in tests; any 16+ bytes do.
SIGNING_KEY = b"test-signing-key-0123456789abcdef"

MakeBucket = Callable[[], Awaitable[str]]


def unique_bucket() -> str:
    """A bucket name no other test (or earlier run against the same server) uses."""
    return f"test-{uuid.uuid4().hex}"


async def fetch(store: ManagedObjectStore, url: str) -> bytes:
    """Follow a presigned GET URL the way its holder would.

    S3 URLs go over HTTP to the server; local URLs go through ``verify_presigned``, which is
    what the host's route does before reading the object.
    """
    if isinstance(store, LocalObjectStore):
        bucket, key = store.verify_presigned(url)
        return await store.get(bucket, key)
    async with httpx2.AsyncClient() as client:
        response = await client.get(url)
    response.raise_for_status()
    return response.content


async def upload(store: ManagedObjectStore, url: str, data: bytes) -> None:
    """Follow a presigned PUT URL the way a browser uploading a file would."""
    if isinstance(store, LocalObjectStore):
        bucket, key = store.verify_presigned(url, method="PUT")
        await store.put(bucket, key, data)
        return
    async with httpx2.AsyncClient() as client:
        response = await client.put(url, content=data)
    response.raise_for_status()
