"""``create_object_store`` picks the backend from the settings and connects nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from plexica.settings import StorageSettings
from plexica.storage import LocalObjectStore, ManagedObjectStore, S3ObjectStore, create_object_store
from plexica_sdk.errors import ValidationError

pytestmark = pytest.mark.anyio


async def test_default_settings_give_a_local_store_under_the_data_dir(tmp_path: Path) -> None:
    async with create_object_store(StorageSettings(), tmp_path, signing_key=b"k" * 32) as store:
        assert isinstance(store, LocalObjectStore)
        assert isinstance(store, ManagedObjectStore)
        assert store.root == tmp_path / "objects"
        await store.create_bucket("tenant-acme")
        assert (tmp_path / "objects" / "tenant-acme").is_dir()


def test_s3_settings_give_an_s3_store_without_connecting(tmp_path: Path) -> None:
    settings = StorageSettings(backend="s3", s3_endpoint="http://127.0.0.1:1", bucket_prefix="prod-")

    store = create_object_store(settings, tmp_path)

    assert isinstance(store, S3ObjectStore)
    assert store.bucket_name("tenant-acme") == "prod-tenant-acme"


def test_invalid_bucket_prefix_in_settings_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        create_object_store(StorageSettings(backend="s3", bucket_prefix="Prod_"), tmp_path)
