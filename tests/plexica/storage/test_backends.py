"""Behaviour every object store shares, run on the local store and on S3 (SeaweedFS)."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from plexica.storage import ManagedObjectStore
from plexica_sdk.errors import ConflictError, NotFoundError, ValidationError
from plexica_sdk.protocols import ObjectStore
from tests.plexica.storage.support import MakeBucket, fetch, unique_bucket, upload

pytestmark = pytest.mark.anyio

TRAVERSAL_KEYS = [
    pytest.param("../escape", id="parent"),
    pytest.param("a/../../escape", id="nested-parent"),
    pytest.param("..", id="bare-parent"),
    pytest.param("/etc/passwd", id="absolute"),
    pytest.param("a/./b", id="dot-segment"),
    pytest.param("a\x00b", id="nul"),
    pytest.param("a\nb", id="newline"),
    pytest.param("..\\escape", id="backslash"),
    pytest.param("", id="empty"),
    pytest.param("k" * 1025, id="too-long"),
]

BAD_BUCKETS = [
    pytest.param("ab", id="too-short"),
    pytest.param("b" * 64, id="too-long"),
    pytest.param("Tenant-Acme", id="uppercase"),
    pytest.param("-acme", id="leading-dash"),
    pytest.param("acme-", id="trailing-dash"),
    pytest.param("a..b", id="double-dot"),
    pytest.param("a_b", id="underscore"),
    pytest.param("192.168.1.1", id="ip-address"),
    pytest.param("xn--acme", id="reserved-prefix"),
    pytest.param("../etc", id="traversal"),
]


async def test_store_satisfies_the_sdk_protocol(store: ManagedObjectStore) -> None:
    assert isinstance(store, ObjectStore)


async def test_put_then_get_and_head_round_trip(store: ManagedObjectStore, bucket: str) -> None:
    data = b"hello \x00 world"

    info = await store.put(bucket, "docs/hello.txt", data, content_type="text/plain")

    assert info.key == "docs/hello.txt"
    assert info.size == len(data)
    assert info.etag == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert await store.get(bucket, "docs/hello.txt") == data
    head = await store.head(bucket, "docs/hello.txt")
    assert (head.key, head.size, head.etag, head.content_type) == ("docs/hello.txt", len(data), info.etag, "text/plain")
    assert head.last_modified is not None


async def test_content_type_defaults_to_octet_stream(store: ManagedObjectStore, bucket: str) -> None:
    info = await store.put(bucket, "blob", b"")

    assert info.content_type == "application/octet-stream"
    assert (await store.head(bucket, "blob")).content_type == "application/octet-stream"
    assert await store.get(bucket, "blob") == b""


async def test_put_replaces_the_object(store: ManagedObjectStore, bucket: str) -> None:
    await store.put(bucket, "k", b"first version")
    await store.put(bucket, "k", b"second")

    assert await store.get(bucket, "k") == b"second"
    assert (await store.head(bucket, "k")).size == len(b"second")
    assert [info.key for info in await store.list(bucket)] == ["k"]


async def test_keys_that_clash_as_paths_coexist(store: ManagedObjectStore, bucket: str) -> None:
    await store.put(bucket, "a", b"file")
    await store.put(bucket, "a/b", b"child")
    await store.put(bucket, "notes/ünïcode name?#%.txt", b"odd")

    assert await store.get(bucket, "a") == b"file"
    assert await store.get(bucket, "a/b") == b"child"
    assert await store.get(bucket, "notes/ünïcode name?#%.txt") == b"odd"


async def test_missing_object_is_not_found(store: ManagedObjectStore, bucket: str) -> None:
    with pytest.raises(NotFoundError):
        await store.get(bucket, "missing")
    with pytest.raises(NotFoundError):
        await store.head(bucket, "missing")


async def test_missing_bucket_is_not_found(store: ManagedObjectStore) -> None:
    missing = unique_bucket()

    with pytest.raises(NotFoundError):
        await store.get(missing, "k")
    with pytest.raises(NotFoundError):
        await store.head(missing, "k")
    with pytest.raises(NotFoundError):
        await store.list(missing)
    with pytest.raises(NotFoundError):
        await store.delete(missing, "k")


async def test_delete_removes_and_tolerates_missing_objects(store: ManagedObjectStore, bucket: str) -> None:
    await store.put(bucket, "k", b"v")

    await store.delete(bucket, "k")
    await store.delete(bucket, "k")

    with pytest.raises(NotFoundError):
        await store.get(bucket, "k")
    assert await store.list(bucket) == []


async def test_list_filters_by_prefix_in_key_order(store: ManagedObjectStore, bucket: str) -> None:
    for key in ("reports/2", "reports/10", "reports/1", "reportsX", "images/a", "é"):
        await store.put(bucket, key, key.encode())

    listed = await store.list(bucket, "reports/")

    assert [info.key for info in listed] == ["reports/1", "reports/10", "reports/2"]
    assert [info.size for info in listed] == [9, 10, 9]
    assert [info.key for info in await store.list(bucket)] == [
        "images/a",
        "reports/1",
        "reports/10",
        "reports/2",
        "reportsX",
        "é",
    ]


async def test_buckets_are_isolated(store: ManagedObjectStore, make_bucket: MakeBucket) -> None:
    acme, globex = await make_bucket(), await make_bucket()
    await store.put(acme, "shared/key", b"acme's")
    await store.put(globex, "shared/key", b"globex's")

    await store.delete(acme, "shared/key")

    assert await store.get(globex, "shared/key") == b"globex's"
    assert await store.list(acme) == []
    await store.delete_bucket(acme, force=True)
    assert [info.key for info in await store.list(globex)] == ["shared/key"]


async def test_create_bucket_is_idempotent(store: ManagedObjectStore, bucket: str) -> None:
    await store.put(bucket, "k", b"v")

    await store.create_bucket(bucket)

    assert await store.get(bucket, "k") == b"v"


async def test_deleting_a_non_empty_bucket_without_force_is_a_conflict(store: ManagedObjectStore) -> None:
    name = unique_bucket()
    await store.create_bucket(name)
    await store.put(name, "k", b"v")

    with pytest.raises(ConflictError, match="not empty") as caught:
        await store.delete_bucket(name)
    assert caught.value.resource == name
    assert await store.get(name, "k") == b"v"

    await store.delete_bucket(name, force=True)


async def test_force_delete_removes_a_bucket_with_many_objects(store: ManagedObjectStore) -> None:
    # More than one listing page (1000 keys), so the delete has to paginate.
    name = unique_bucket()
    await store.create_bucket(name)
    limit = asyncio.Semaphore(16)

    async def put(index: int) -> None:
        async with limit:
            await store.put(name, f"obj/{index:04}", b"x")

    async with asyncio.TaskGroup() as group:
        for index in range(1005):
            group.create_task(put(index))
    assert len(await store.list(name)) == 1005

    await store.delete_bucket(name, force=True)

    with pytest.raises(NotFoundError):
        await store.list(name)
    await store.delete_bucket(name, force=True)  # a missing bucket is not an error
    await store.delete_bucket(name)


async def test_empty_bucket_deletes_without_force(store: ManagedObjectStore) -> None:
    name = unique_bucket()
    await store.create_bucket(name)

    await store.delete_bucket(name)

    with pytest.raises(NotFoundError):
        await store.get(name, "k")


@pytest.mark.parametrize("key", TRAVERSAL_KEYS)
async def test_unsafe_keys_are_rejected(store: ManagedObjectStore, bucket: str, key: str) -> None:
    with pytest.raises(ValidationError) as caught:
        await store.put(bucket, key, b"v")
    assert caught.value.field == "key"
    with pytest.raises(ValidationError):
        await store.get(bucket, key)
    with pytest.raises(ValidationError):
        await store.head(bucket, key)
    with pytest.raises(ValidationError):
        await store.delete(bucket, key)
    with pytest.raises(ValidationError):
        await store.presigned_url(bucket, key)
    assert await store.list(bucket) == []


@pytest.mark.parametrize("name", BAD_BUCKETS)
async def test_invalid_bucket_names_are_rejected(store: ManagedObjectStore, name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        await store.create_bucket(name)
    assert caught.value.field == "bucket"
    with pytest.raises(ValidationError):
        await store.get(name, "k")


async def test_presigned_get_url_serves_the_object(store: ManagedObjectStore, bucket: str) -> None:
    key = "shared/report final (1).pdf"
    await store.put(bucket, key, b"%PDF-1.7 ...", content_type="application/pdf")

    url = await store.presigned_url(bucket, key, expires_in=60)

    assert await fetch(store, url) == b"%PDF-1.7 ..."


async def test_presigned_put_url_uploads_an_object(store: ManagedObjectStore, bucket: str) -> None:
    url = await store.presigned_url(bucket, "uploads/avatar.png", method="PUT", expires_in=60)

    await upload(store, url, b"\x89PNG...")

    assert await store.get(bucket, "uploads/avatar.png") == b"\x89PNG..."


@pytest.mark.parametrize(
    ("expires_in", "method", "field"),
    [(0, "GET", "expires_in"), (7 * 24 * 3600 + 1, "GET", "expires_in"), (60, "DELETE", "method")],
    ids=["no-lifetime", "over-a-week", "delete"],
)
async def test_presigned_url_arguments_are_checked(
    store: ManagedObjectStore, bucket: str, expires_in: int, method: str, field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        await store.presigned_url(bucket, "k", expires_in=expires_in, method=method)
    assert caught.value.field == field
