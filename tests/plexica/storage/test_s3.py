"""What only the S3 store does: its client's lifetime, bucket prefixes and S3's failures."""

from __future__ import annotations

import asyncio
import importlib
import uuid
from types import ModuleType
from typing import Any

import httpx2
import pytest

from plexica.storage import S3ObjectStore
from plexica_sdk.errors import BackendUnavailableError, MissingDependencyError, NotFoundError, ValidationError
from tests.plexica.storage.support import unique_bucket

pytestmark = pytest.mark.anyio


def make_store(config: Any, **overrides: Any) -> S3ObjectStore:
    options: dict[str, Any] = {
        "endpoint_url": config.endpoint,
        "region": config.region,
        "access_key": config.access_key,
        "secret_key": config.secret_key,
    }
    return S3ObjectStore(**(options | overrides))


def test_missing_aioboto3_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = importlib.import_module

    def no_aioboto3(name: str, package: str | None = None) -> ModuleType:
        if name == "aioboto3":
            raise ImportError(name)
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", no_aioboto3)

    with pytest.raises(MissingDependencyError) as caught:
        S3ObjectStore()
    assert caught.value.extra == "s3"


def test_building_creates_no_client_and_hides_the_secret() -> None:
    store = S3ObjectStore(endpoint_url="http://127.0.0.1:1", access_key="id", secret_key="very-secret")

    assert "very-secret" not in repr(store)
    assert "closed" in repr(store)


async def test_using_a_store_that_is_not_open_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="not open"):
        await S3ObjectStore(endpoint_url="http://127.0.0.1:1").get("tenant-acme", "k")


@pytest.mark.parametrize("prefix", ["Staging-", "-x", "under_score"], ids=["uppercase", "leading-dash", "underscore"])
def test_invalid_bucket_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ValidationError):
        S3ObjectStore(bucket_prefix=prefix)


def test_prefixed_bucket_name_must_still_be_valid() -> None:
    store = S3ObjectStore(bucket_prefix="a-rather-long-deployment-prefix-")

    assert store.bucket_name("tenant-acme") == "a-rather-long-deployment-prefix-tenant-acme"
    with pytest.raises(ValidationError):
        store.bucket_name("tenant-" + "x" * 30)


async def test_unreachable_endpoint_is_backend_unavailable() -> None:
    store = S3ObjectStore(endpoint_url="http://127.0.0.1:1", access_key="a", secret_key="b", max_attempts=1)

    async with store:
        with pytest.raises(BackendUnavailableError) as caught:
            await store.get("tenant-acme", "k")
    assert caught.value.backend == "s3"


@pytest.mark.s3
async def test_bucket_prefix_namespaces_buckets_on_the_server(s3_config: Any) -> None:
    prefix = f"p{uuid.uuid4().hex[:8]}-"
    name = f"tenant-{uuid.uuid4().hex[:12]}"
    async with make_store(s3_config, bucket_prefix=prefix) as prefixed, make_store(s3_config) as raw:
        await prefixed.create_bucket(name)
        await prefixed.put(name, "k", b"v")
        try:
            assert await raw.get(prefix + name, "k") == b"v"
            with pytest.raises(NotFoundError):
                await raw.get(name, "k")
        finally:
            await prefixed.delete_bucket(name, force=True)


@pytest.mark.s3
async def test_wrong_credentials_are_backend_unavailable(s3_config: Any) -> None:
    async with make_store(s3_config, secret_key="not-the-secret", max_attempts=1) as store:
        with pytest.raises(BackendUnavailableError) as caught:
            await store.list(unique_bucket())
    assert caught.value.backend == "s3"


@pytest.mark.s3
async def test_expired_presigned_url_is_refused_by_the_server(s3_config: Any) -> None:
    name = unique_bucket()
    async with make_store(s3_config) as store:
        await store.create_bucket(name)
        try:
            await store.put(name, "k", b"v")
            url = await store.presigned_url(name, "k", expires_in=1)
            await asyncio.sleep(2.1)
            async with httpx2.AsyncClient() as client:
                response = await client.get(url)
            assert response.status_code == 403
        finally:
            await store.delete_bucket(name, force=True)


@pytest.mark.s3
async def test_store_can_be_reopened_and_not_entered_twice(s3_config: Any) -> None:
    store = make_store(s3_config)
    name = unique_bucket()
    async with store:
        await store.create_bucket(name)
        with pytest.raises(RuntimeError, match="already open"):
            await store.__aenter__()
    async with store:
        await store.delete_bucket(name)
