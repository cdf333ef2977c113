"""A local presigned PUT enforces its size limit while streaming: 413 at once, nothing written.

A ``Content-Length`` above the limit is refused before a byte is read; a streamed (chunked) body
is cut off at the chunk that crosses the limit, so the upload reads at most one chunk past it.
Either way no object, and no temporary file, is left behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from plexica.tenancy.service import tenant_context_of
from plexica_sdk import PluginManifest, hookimpl
from plexica_sdk.protocols import PluginObjects
from plexica_sdk.types import StorageNamespace
from tests.e2e.conftest import Host
from tests.e2e.people import assert_problem

pytestmark = pytest.mark.anyio

MakeHost = Callable[..., contextlib.AbstractAsyncContextManager[Host]]
LIMIT = 4096
CHUNK = 1024


class Uploads:
    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(
            name="uploads", version="1.0.0", storage=(StorageNamespace(name="docs", max_bytes=LIMIT),)
        )

    @hookimpl
    def plexica_routes(self) -> Sequence[Any]:
        return []


class Body:
    """A request body of ``chunks`` chunks that counts how many were pulled."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.pulled += 1
            yield b"x" * CHUNK


@pytest.fixture
async def objects(make_host: MakeHost) -> AsyncIterator[tuple[Host, PluginObjects]]:
    async with make_host(plugins=[Uploads()]) as host:
        await host.platform.tenants.provision("acme")
        ctx = tenant_context_of(await host.platform.tenants.get("acme"))
        yield host, host.platform.host_for("uploads", ctx).objects


def leftovers(host: Host) -> list[str]:
    return [str(path) for path in host.platform.settings.data_dir.rglob("*.tmp")]


async def test_a_streamed_body_over_the_limit_is_cut_off_at_the_limit(objects: tuple[Host, PluginObjects]) -> None:
    host, store = objects
    url = await store.presigned_url("docs/big.bin", method="PUT")
    body = Body(chunks=1000)  # 1,000 KiB offered against a 4 KiB limit

    assert_problem(await host.client.put(url, content=body), 413)
    assert body.pulled <= LIMIT // CHUNK + 2  # the limit, the chunk crossing it, and at most one in flight
    assert await store.list() == []
    assert leftovers(host) == []


async def test_a_declared_length_over_the_limit_is_refused_before_reading(objects: tuple[Host, PluginObjects]) -> None:
    host, store = objects
    url = await store.presigned_url("docs/declared.bin", method="PUT")
    body = Body(chunks=LIMIT // CHUNK + 1)

    response = await host.client.put(url, content=body, headers={"Content-Length": str(LIMIT + CHUNK)})
    assert_problem(response, 413)
    assert response.json()["type"].endswith("/payload-too-large")
    assert body.pulled == 0
    assert await store.list() == []


async def test_a_body_at_the_limit_is_stored(objects: tuple[Host, PluginObjects]) -> None:
    host, store = objects
    url = await store.presigned_url("docs/exact.bin", method="PUT")

    stored = await host.client.put(url, content=Body(chunks=LIMIT // CHUNK))
    assert stored.status_code == 201, stored.text
    assert stored.json()["size"] == LIMIT
    assert [info.key for info in await store.list()] == ["docs/exact.bin"]
    assert leftovers(host) == []
