"""The ``store`` fixture: each behavioural test runs on the local store and on S3 (SeaweedFS)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plexica.storage import LocalObjectStore, ManagedObjectStore, S3ObjectStore
from tests.plexica.storage.support import SIGNING_KEY, MakeBucket, unique_bucket


@pytest.fixture(
    params=[
        pytest.param("local", id="local"),
        pytest.param("s3", id="s3", marks=pytest.mark.s3),
    ]
)
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, anyio_backend: str
) -> AsyncIterator[ManagedObjectStore]:
    """An open store of each backend; S3 comes from the session's ``s3_config``."""
    backend: ManagedObjectStore
    if request.param == "local":
        backend = LocalObjectStore(tmp_path / "objects", signing_key=SIGNING_KEY)
    else:
        config = request.getfixturevalue("s3_config")
        backend = S3ObjectStore(
            endpoint_url=config.endpoint,
            region=config.region,
            access_key=config.access_key,
            secret_key=config.secret_key,
        )
    async with backend:
        yield backend


@pytest.fixture
async def make_bucket(store: ManagedObjectStore) -> AsyncIterator[MakeBucket]:
    """Create fresh buckets on demand; all are force-deleted when the test ends."""
    created: list[str] = []

    async def make() -> str:
        name = unique_bucket()
        await store.create_bucket(name)
        created.append(name)
        return name

    yield make
    for name in created:
        await store.delete_bucket(name, force=True)


@pytest.fixture
async def bucket(make_bucket: MakeBucket) -> str:
    """One fresh bucket."""
    return await make_bucket()
