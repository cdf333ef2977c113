"""``host.objects`` through a real host: namespaces, limits, the uploaded hook, presigned URLs, deletion.

A ``files`` plugin streams request bodies into ``host.objects`` from its routes; the host
confines them to (tenant, plugin), applies the namespace limits, calls the plugin's
``plexica_object_uploaded`` and removes everything on tenant deletion, in both layouts.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from plexica.tenancy.service import tenant_context_of
from plexica_sdk import PluginManifest, context, hookimpl
from plexica_sdk.errors import PluginLoadError
from plexica_sdk.http import host as host_of
from plexica_sdk.protocols import Host as PluginHost
from plexica_sdk.types import ObjectInfo, StorageNamespace, TenantContext
from tests.e2e.conftest import Host
from tests.e2e.people import assert_problem
from tests.fixtures.services import S3Config

pytestmark = pytest.mark.anyio

MakeHost = Callable[..., contextlib.AbstractAsyncContextManager[Host]]
MiB = 1024 * 1024


async def put_file(request: Request) -> JSONResponse:
    objects = host_of(request).objects
    key = f"{request.path_params['ns']}/{request.path_params['name']}"
    info = await objects.put(key, request.stream(), content_type=request.headers.get("content-type"))
    return JSONResponse({"key": info.key, "size": info.size}, status_code=201)


async def get_file(request: Request) -> Response:
    objects = host_of(request).objects
    key = f"{request.path_params['ns']}/{request.path_params['name']}"
    info = await objects.head(key)
    return StreamingResponse(await objects.stream(key), media_type=info.content_type)


async def presign(request: Request) -> JSONResponse:
    objects = host_of(request).objects
    key = f"{request.path_params['ns']}/{request.path_params['name']}"
    return JSONResponse({"url": await objects.presigned_url(key, method=request.query_params.get("method", "GET"))})


class FilesPlugin:
    def __init__(self, max_body_bytes: int = 8 * MiB) -> None:
        self.max_body_bytes = max_body_bytes
        self.uploaded: list[tuple[str, str, int, str, str]] = []

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        # Uploads stream past the host's 1 MiB body limit for plugin routes: the manifest raises it.
        return PluginManifest(
            name="files",
            version="1.0.0",
            storage=(StorageNamespace(name="files"),),
            max_body_bytes=self.max_body_bytes,
        )

    @hookimpl
    def plexica_storage_namespaces(self) -> Sequence[StorageNamespace]:
        return [StorageNamespace(name="thumbs", max_bytes=1024, content_types=("image/*",))]

    @hookimpl
    async def plexica_object_uploaded(
        self, tenant: TenantContext, key: str, info: ObjectInfo, host: PluginHost
    ) -> None:
        self.uploaded.append((tenant.slug, key, info.size, host.plugin, context.current().slug))
        if key.endswith("hook-fails"):
            raise RuntimeError("the hook broke")

    @hookimpl
    def plexica_routes(self) -> Sequence[Any]:
        return [
            Route("/o/{ns}/{name}", put_file, methods=["PUT"]),
            Route("/o/{ns}/{name}", get_file, methods=["GET"]),
            Route("/presign/{ns}/{name}", presign, methods=["POST"]),
        ]


class Nosy:
    """Another plugin that tries to read the files plugin's objects."""

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(name="nosy", version="1.0.0", storage=(StorageNamespace(name="files"),))


@pytest.fixture(params=["bucket", "prefix"])
def layout(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {"layout": request.param, "shared_bucket": f"test-{uuid.uuid4().hex}"}


async def test_plugin_routes_stream_objects_confined_with_limits_and_the_hook(
    make_host: MakeHost, layout: dict[str, Any]
) -> None:
    files = FilesPlugin()
    async with make_host(plugins=[files, Nosy()], storage=layout) as host:
        for slug in ("acme", "globex"):
            await host.platform.tenants.provision(slug)
        acme = host.auth(host.token("acme"))

        body = os.urandom(3 * MiB)
        stored = await host.client.put("/api/plugins/files/o/files/a.bin", content=body, headers=acme)
        assert stored.status_code == 201, stored.text
        assert stored.json() == {"key": "files/a.bin", "size": len(body)}
        assert files.uploaded == [("acme", "files/a.bin", len(body), "files", "acme")]
        got = await host.client.get("/api/plugins/files/o/files/a.bin", headers=acme)
        assert got.content == body

        # Another tenant, and another plugin in the same tenant, cannot reach it.
        globex = host.auth(host.token("globex"))
        assert_problem(await host.client.get("/api/plugins/files/o/files/a.bin", headers=globex), 404)
        acme_ctx = tenant_context_of(await host.platform.tenants.get("acme"))
        nosy = host.platform.host_for("nosy", acme_ctx).objects
        assert await nosy.list() == []

        # Namespace limits (from the hook-declared namespace) are 422 problems, storing nothing.
        headers = {**acme, "Content-Type": "text/plain"}
        assert_problem(await host.client.put("/api/plugins/files/o/thumbs/t.txt", content=b"x", headers=headers), 422)
        big = {**acme, "Content-Type": "image/png"}
        too_big = await host.client.put("/api/plugins/files/o/thumbs/t.png", content=b"x" * 1025, headers=big)
        assert_problem(too_big, 422, "size")
        assert_problem(await host.client.put("/api/plugins/files/o/other/x", content=b"x", headers=acme), 422, "key")
        assert [i.key for i in await host.platform.host_for("files", acme_ctx).objects.list()] == ["files/a.bin"]

        # A failing hook is logged; the upload stands.
        failing = await host.client.put("/api/plugins/files/o/files/hook-fails", content=b"kept", headers=acme)
        assert failing.status_code == 201, failing.text
        assert (await host.client.get("/api/plugins/files/o/files/hook-fails", headers=acme)).content == b"kept"

        # A local presigned PUT goes through the plugin: limits apply and the hook runs.
        presigned = await host.client.post("/api/plugins/files/presign/files/up.txt?method=PUT", headers=acme)
        url = presigned.json()["url"]
        uploaded = await host.client.put(url, content=b"via url", headers={"Content-Type": "text/plain"})
        assert uploaded.status_code == 201, uploaded.text
        assert files.uploaded[-1] == ("acme", "files/up.txt", 7, "files", "acme")
        download = await host.client.post("/api/plugins/files/presign/files/up.txt", headers=acme)
        assert (await host.client.get(download.json()["url"])).content == b"via url"
        thumb = await host.client.post("/api/plugins/files/presign/thumbs/t.png?method=PUT", headers=acme)
        over = await host.client.put(thumb.json()["url"], content=b"x" * 2048, headers={"Content-Type": "image/png"})
        assert_problem(over, 413)  # a presigned PUT over its limit is a 413, cut off while streaming

        # Deleting a tenant removes its objects, and only its.
        await host.client.put("/api/plugins/files/o/files/g.bin", content=b"globex's", headers=globex)
        await host.platform.tenants.delete("acme")
        store, storage = host.platform.objects, host.platform.storage_layout
        if layout["layout"] == "prefix":
            assert await store.list(storage.shared_bucket, "tenant-acme/") == []
        else:
            with pytest.raises(Exception, match="no bucket"):
                await store.list("tenant-acme")
        globex_ctx = tenant_context_of(await host.platform.tenants.get("globex"))
        assert [i.key for i in await host.platform.host_for("files", globex_ctx).objects.list()] == ["files/g.bin"]
        await host.platform.tenants.delete("globex")


class BadNamespaces:
    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(name="bad", version="1.0.0", storage=(StorageNamespace(name="files"),))

    @hookimpl
    def plexica_storage_namespaces(self) -> Sequence[Any]:
        return [StorageNamespace(name="files")]


async def test_a_namespace_declared_twice_stops_start_up_naming_the_plugin(make_host: MakeHost) -> None:
    with pytest.raises(PluginLoadError, match="bad"):
        async with make_host(plugins=[BadNamespaces()]):
            pass


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow
@pytest.mark.s3
async def test_a_200_mb_upload_through_a_plugin_route_streams_to_s3_in_bounded_memory(
    make_host: MakeHost, s3_config: S3Config
) -> None:
    total, chunk = 200 * MiB, os.urandom(MiB)
    peak = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal peak
        for _ in range(total // MiB):
            yield chunk
            peak = max(peak, _rss_bytes())

    shared_bucket = f"test-{uuid.uuid4().hex}"
    storage = {
        "backend": "s3",
        "s3_endpoint": s3_config.endpoint,
        "s3_region": s3_config.region,
        "s3_access_key": s3_config.access_key,
        "s3_secret_key": s3_config.secret_key,
        "layout": "prefix",
        "shared_bucket": shared_bucket,
        "max_object_bytes": total,
    }
    async with make_host(plugins=[FilesPlugin(max_body_bytes=total)], storage=storage) as host:
        slug = f"t{uuid.uuid4().hex[:10]}"
        await host.platform.tenants.provision(slug)
        headers = host.auth(host.token(slug))
        try:
            warm = await host.client.put("/api/plugins/files/o/files/warm", content=chunk * 9, headers=headers)
            assert warm.status_code == 201, warm.text
            baseline = _rss_bytes()
            response = await host.client.put("/api/plugins/files/o/files/big.bin", content=body(), headers=headers)
            assert response.status_code == 201, response.text
            assert response.json()["size"] == total
        finally:
            await host.platform.tenants.delete(slug)
            await host.platform.objects.delete_bucket(shared_bucket, force=True)
    growth = peak - baseline
    print(f"RSS growth during a 200 MiB upload through a plugin route: {growth / MiB:.1f} MiB")
    assert growth < 50 * MiB
