"""``plexica_cache_backend`` and ``plexica_object_store_backend``: a plugin supplies a real backend.

The host must use the provided object for everything (tenants' buckets, plugins' caches), open it
on its lifespan and refuse a provider that returns something of the wrong kind.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from plexica.cache import RedisCache
from plexica.storage.s3 import S3ObjectStore
from plexica.tenancy.service import tenant_context_of
from plexica_sdk import PluginManifest, hookimpl
from plexica_sdk.errors import PluginLoadError
from tests.e2e.conftest import Host
from tests.fixtures.services import S3Config

pytestmark = pytest.mark.anyio

MakeHost = Callable[..., contextlib.AbstractAsyncContextManager[Host]]


class BackendPlugin:
    def __init__(self, cache: object = None, objects: object = None) -> None:
        self.cache, self.objects = cache, objects

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(name="backends", version="1.0.0")

    @hookimpl
    def plexica_cache_backend(self) -> Any:
        return self.cache

    @hookimpl
    def plexica_object_store_backend(self) -> Any:
        return self.objects


async def test_a_plugin_provided_redis_cache_and_s3_store_serve_the_host(
    make_host: MakeHost, redis_url: str, s3_config: S3Config
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}-"
    cache = RedisCache(redis_url)
    objects = S3ObjectStore(
        endpoint_url=s3_config.endpoint,
        access_key=s3_config.access_key,
        secret_key=s3_config.secret_key,
        region=s3_config.region,
        bucket_prefix=prefix,
    )
    async with make_host(plugins=[BackendPlugin(cache, objects)]) as host:
        assert host.platform.cache is cache and host.platform.objects is objects
        tenant = await host.platform.tenants.provision("acme")
        # The tenant's bucket was created on the provided S3 store, through its open client; it
        # holds only what the notes plugin wrote on install (its frontend's remote entry).
        keys = [info.key for info in await objects.list(f"tenant-{tenant.slug}")]
        assert keys and all(key.startswith("notes/web/") for key in keys)
        handle = host.platform.host_for("notes", tenant_context_of(tenant))
        await handle.cache.set("probe", b"1")
        prefix_of_plugin = handle.cache.prefix  # type: ignore[attr-defined]
        assert await cache.get(f"{prefix_of_plugin}probe") == b"1"  # written to the provided Redis
        await host.platform.tenants.delete("acme")
    with pytest.raises(RuntimeError, match="not open"):
        await cache.get("probe")  # the lifespan closed what it opened


async def test_a_provider_returning_the_wrong_kind_is_refused_naming_the_plugin(make_host: MakeHost) -> None:
    with pytest.raises(PluginLoadError, match=r"backends.*plexica_cache_backend.*not a Cache"):
        async with make_host(plugins=[BackendPlugin(cache="not a cache")]):
            pass
