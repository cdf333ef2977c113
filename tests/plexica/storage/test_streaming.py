"""Streaming uploads: S3 multipart above the threshold, aborts that leave nothing, bounded memory."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aioboto3
import pytest

from plexica.storage import LocalObjectStore, PluginObjectStore, S3ObjectStore, StorageLayout
from plexica_sdk.errors import NotFoundError, ValidationError
from plexica_sdk.types import StorageNamespace
from tests.plexica.storage.scoped_support import chunks_of, read_all
from tests.plexica.storage.support import SIGNING_KEY, unique_bucket
from tests.plexica.storage.test_s3 import make_store

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024


class Boom(Exception):
    """The upload's source failed half-way."""


async def failing_after(data: bytes, chunk: int) -> AsyncIterator[bytes]:
    async for piece in chunks_of(data, chunk):
        yield piece
    raise Boom


async def pending_uploads(config: Any, bucket: str) -> list[Any]:
    session = aioboto3.Session(
        aws_access_key_id=config.access_key, aws_secret_access_key=config.secret_key, region_name=config.region
    )
    async with session.client("s3", endpoint_url=config.endpoint) as client:
        response = await client.list_multipart_uploads(Bucket=bucket)
    return list(response.get("Uploads", ()))


@pytest.fixture
async def s3_store(s3_config: Any) -> AsyncIterator[S3ObjectStore]:
    async with make_store(s3_config, multipart_threshold=5 * MiB, part_size=5 * MiB) as store:
        yield store


@pytest.fixture
async def s3_bucket(s3_store: S3ObjectStore) -> AsyncIterator[str]:
    bucket = unique_bucket()
    await s3_store.create_bucket(bucket)
    yield bucket
    await s3_store.delete_bucket(bucket, force=True)


@pytest.mark.s3
async def test_a_stream_above_the_threshold_is_a_multipart_upload(s3_store: S3ObjectStore, s3_bucket: str) -> None:
    data = os.urandom(12 * MiB + 123)

    info = await s3_store.put(s3_bucket, "big.bin", chunks_of(data, 1_000_003), content_type="video/mp4")

    assert info.size == len(data)
    assert info.etag is not None and info.etag.endswith("-3")  # three 5 MiB parts, the last one short
    head = await s3_store.head(s3_bucket, "big.bin")
    assert (head.size, head.content_type) == (len(data), "video/mp4")
    streamed = await read_all(await s3_store.stream(s3_bucket, "big.bin"))
    assert hashlib.sha256(streamed).digest() == hashlib.sha256(data).digest()


@pytest.mark.s3
async def test_a_stream_below_the_threshold_is_one_put(s3_store: S3ObjectStore, s3_bucket: str) -> None:
    data = os.urandom(MiB)

    info = await s3_store.put(s3_bucket, "small.bin", chunks_of(data, 64 * 1024))

    assert info.etag == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert await s3_store.get(s3_bucket, "small.bin") == data


@pytest.mark.s3
async def test_a_failing_multipart_upload_is_aborted_and_leaves_nothing(
    s3_store: S3ObjectStore, s3_bucket: str, s3_config: Any
) -> None:
    with pytest.raises(Boom):
        await s3_store.put(s3_bucket, "broken.bin", failing_after(os.urandom(11 * MiB), MiB))

    with pytest.raises(NotFoundError):
        await s3_store.head(s3_bucket, "broken.bin")
    assert await pending_uploads(s3_config, s3_store.bucket_name(s3_bucket)) == []


@pytest.mark.s3
async def test_a_plugin_upload_over_its_limit_aborts_the_multipart(s3_store: S3ObjectStore, s3_config: Any) -> None:
    layout = StorageLayout(layout="prefix", shared_bucket=unique_bucket())
    await layout.create_tenant(s3_store, "acme")
    objects = PluginObjectStore(
        s3_store, layout, slug="acme", plugin="p", namespaces=[StorageNamespace(name="docs", max_bytes=11 * MiB)]
    )
    try:
        with pytest.raises(ValidationError):
            await objects.put("docs/big.bin", chunks_of(b"x" * (12 * MiB), MiB))
        assert await objects.list() == []
        assert await pending_uploads(s3_config, layout.shared_bucket) == []
    finally:
        await s3_store.delete_bucket(layout.shared_bucket, force=True)


async def test_a_failing_local_upload_leaves_no_temp_file_and_keeps_the_old_object(tmp_path: Path) -> None:
    async with LocalObjectStore(tmp_path / "objects", signing_key=SIGNING_KEY) as store:
        await store.create_bucket("tenant-acme")
        await store.put("tenant-acme", "k", b"old")

        with pytest.raises(Boom):
            await store.put("tenant-acme", "k", failing_after(b"new" * 100_000, 4096))

        assert await store.get("tenant-acme", "k") == b"old"
        leftovers = [p.name for p in (tmp_path / "objects").rglob("*") if p.is_file()]
        assert len(leftovers) == 2 and not any(name.endswith(".tmp") for name in leftovers)  # data + sidecar
        assert await store.delete_prefix("tenant-acme", "") == 1
        assert await store.list("tenant-acme") == []


def _rss_bytes() -> int:
    """Resident set size from ``/proc/self/statm`` (its second field, in pages)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow
@pytest.mark.s3
async def test_a_200_mb_plugin_upload_streams_to_s3_in_bounded_memory(s3_config: Any) -> None:
    total, chunk = 200 * MiB, os.urandom(MiB)
    peak = 0

    async def source() -> AsyncIterator[bytes]:
        nonlocal peak
        for _ in range(total // MiB):
            yield chunk  # the same buffer each time: whatever grows is the store's
            peak = max(peak, _rss_bytes())

    async with make_store(s3_config) as store:  # the defaults: 8 MiB threshold and parts
        layout = StorageLayout(layout="bucket", max_object_bytes=total)
        await layout.create_tenant(store, "big")
        objects = PluginObjectStore(store, layout, slug="big", plugin="p", namespaces=[StorageNamespace(name="docs")])
        try:
            await objects.put("docs/warmup.bin", chunks_of(chunk * 9, MiB))  # import and pool warm-up
            baseline = _rss_bytes()
            info = await objects.put("docs/200mb.bin", source())
            assert info.size == total
            assert (await objects.head("docs/200mb.bin")).size == total
        finally:
            await layout.delete_tenant(store, "big")
    growth = peak - baseline
    print(f"RSS growth during a 200 MiB streamed upload: {growth / MiB:.1f} MiB")
    assert growth < 50 * MiB


async def test_a_local_reader_keeps_the_data_it_started_while_a_put_replaces_it(tmp_path: Path) -> None:
    async with LocalObjectStore(tmp_path / "objects", signing_key=SIGNING_KEY) as store:
        await store.create_bucket("tenant-acme")
        await store.put("tenant-acme", "k", b"a" * 10_000)

        chunks = await store.stream("tenant-acme", "k", chunk_size=1000)
        first = await anext(chunks)
        await store.put("tenant-acme", "k", b"b" * 10_000)
        rest = await read_all(chunks)

        assert first + rest == b"a" * 10_000
        assert await store.get("tenant-acme", "k") == b"b" * 10_000
