"""The cached tenant registry over HTTP: warm requests read no database, and changes made by
another host process are seen within a second (docs/cache.md)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from plexica.tenancy.service import tenant_context_of
from plexica_sdk import PluginManifest, context, hookimpl
from tests.e2e.conftest import Host
from tests.fixtures.sql import recorded_statements

pytestmark = pytest.mark.anyio

MakeHost = Callable[..., AbstractAsyncContextManager[Host]]
ROOT = Path(__file__).resolve().parents[2]


class EchoPlugin:
    """One route that answers the resolved tenant and touches nothing else."""

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(name="echo", version="0.1.0")

    @hookimpl
    def plexica_routes(self) -> Sequence[Any]:
        async def whoami(request: Request) -> JSONResponse:
            return JSONResponse({"slug": context.current("echo").slug})

        return [Route("/whoami", whoami)]


statements = recorded_statements


def registry_reads(seen: list[str]) -> int:
    return sum(1 for statement in seen if "FROM core.tenants" in statement or "FROM tenants" in statement)


@pytest.fixture(
    params=[
        pytest.param("embedded", id="sqlite+memory"),
        pytest.param("redis_url", id="postgres+redis", marks=[pytest.mark.postgres, pytest.mark.redis]),
        pytest.param(
            "redis_cluster_url", id="postgres+redis-cluster", marks=[pytest.mark.postgres, pytest.mark.redis_cluster]
        ),
    ]
)
def backends(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "embedded":
        return {}
    return {
        "database": {"url": request.getfixturevalue("postgres_url")},
        "cache": {"redis_url": request.getfixturevalue(request.param)},
    }


async def test_a_warm_request_resolves_its_tenant_with_zero_database_statements(
    make_host: MakeHost, backends: dict[str, Any]
) -> None:
    slug = f"c{uuid.uuid4().hex[:12]}"
    async with make_host(plugins=[EchoPlugin()], **backends) as host:
        await host.platform.tenants.provision(slug)
        await asyncio.sleep(0.6)  # past the second delete that follows each invalidation (docs/cache.md)
        try:
            headers = host.auth(host.token(slug))
            with statements() as cold:
                first = await host.client.get("/api/plugins/echo/whoami", headers=headers)
            assert first.status_code == 200, first.text
            assert first.json() == {"slug": slug}
            assert registry_reads(cold) >= 1  # the cold one reads the registry...

            with statements() as warm:
                again = await host.client.get("/api/plugins/echo/whoami", headers=headers)
            assert again.status_code == 200
            assert warm == []  # ...a warm one runs no statement at all

            with statements() as burst:  # and ten more, across the L1 bound, cost no registry read
                for _ in range(10):
                    assert (await host.client.get("/api/plugins/echo/whoami", headers=headers)).status_code == 200
                    await asyncio.sleep(0.15)
            assert registry_reads(burst) == 0
        finally:
            await host.platform.tenants.delete(slug)


async def test_deleting_a_tenant_flushes_its_cache_keys_on_every_backend(
    make_host: MakeHost, backends: dict[str, Any]
) -> None:
    slug, other = f"d{uuid.uuid4().hex[:12]}", f"k{uuid.uuid4().hex[:12]}"
    async with make_host(plugins=[EchoPlugin()], **backends) as host:
        platform = host.platform
        provisioned = [await platform.tenants.provision(each) for each in (slug, other)]
        await asyncio.sleep(0.6)  # past the second delete that follows each invalidation
        for tenant in provisioned:
            await platform.directory.get(tenant.slug)  # tenant:{slug}:config
            handle = platform.host_for("notes", tenant_context_of(tenant))
            for index in range(30):
                await handle.cache.set(f"k{index}", b"v", ttl=60)  # tenant:{slug}:plugin:notes:k<i>
        try:
            assert await platform.cache.get(f"tenant:{{{slug}}}:config") is not None

            await platform.tenants.delete(slug)

            assert await platform.cache.get(f"tenant:{{{slug}}}:config") is None
            assert await platform.cache.delete_prefix(f"tenant:{{{slug}}}:") == 0  # nothing was left
            assert await platform.cache.get(f"tenant:{{{other}}}:plugin:notes:k29") == b"v"
        finally:
            await platform.tenants.delete(other)


async def test_a_change_through_the_service_is_seen_by_the_next_request(make_host: MakeHost) -> None:
    async with make_host(plugins=[EchoPlugin()]) as host:
        await host.platform.tenants.provision("acme")
        headers = host.auth(host.token("acme"))
        assert (await host.client.get("/api/plugins/echo/whoami", headers=headers)).status_code == 200

        await host.platform.tenants.suspend("acme")
        assert (await host.client.get("/api/plugins/echo/whoami", headers=headers)).status_code == 403
        await host.platform.tenants.resume("acme")
        assert (await host.client.get("/api/plugins/echo/whoami", headers=headers)).status_code == 200
        await host.platform.tenants.delete("acme")
        assert (await host.client.get("/api/plugins/echo/whoami", headers=headers)).status_code == 404

        initech = host.auth(host.token("initech"))
        assert (await host.client.get("/api/plugins/echo/whoami", headers=initech)).status_code == 404
        await host.platform.tenants.provision("initech")  # "not there" was remembered, and is forgotten
        assert (await host.client.get("/api/plugins/echo/whoami", headers=initech)).status_code == 200


class Peer:
    """The other host process (tests/e2e/tenant_peer.py), driven line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def run(self, command: str, slug: str) -> float:
        """Have the peer run ``command``; return the monotonic time at which it started it."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"{command} {slug}\n".encode())
        await self.process.stdin.drain()
        done, ran, on, started = (await self.readline()).split()
        assert (done, ran, on) == ("done", command, slug)
        return float(started)

    async def readline(self) -> str:
        assert self.process.stdout is not None
        return (await asyncio.wait_for(self.process.stdout.readline(), 60)).decode().strip()


@contextlib.asynccontextmanager
async def peer(postgres_url: str, redis_url: str, data_dir: Path) -> AsyncIterator[Peer]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.e2e.tenant_peer",
        postgres_url,
        redis_url,
        str(data_dir),
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        running = Peer(process)
        assert await running.readline() == "ready"
        yield running
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()


async def eventually(host: Host, slug: str, status: int, since: float) -> float:
    """Poll until a request to ``slug`` answers ``status``; return how long after ``since`` it did."""
    while True:
        response = await host.client.get("/api/plugins/echo/whoami", headers=host.auth(host.token(slug)))
        elapsed = time.monotonic() - since
        if response.status_code == status:
            return elapsed
        assert elapsed < 1.0, f"still {response.status_code} after {elapsed:.2f} s, expected {status}"
        await asyncio.sleep(0.01)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
async def test_another_host_process_suspending_or_deleting_a_tenant_is_seen_within_a_second(
    make_host: MakeHost, postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    slug = f"p{uuid.uuid4().hex[:12]}"
    # A long L1 bound while subscribed: only the invalidation message can make A notice in time.
    cache = {"redis_url": redis_url, "l1_subscribed_max_age_seconds": 30.0}
    shared: dict[str, Any] = {"database": {"url": postgres_url}, "cache": cache}
    async with make_host(plugins=[EchoPlugin()], **shared) as host, peer(postgres_url, redis_url, tmp_path / "b") as b:
        assert host.platform.layered.subscribed
        await host.platform.tenants.provision(slug)
        try:
            assert await eventually(host, slug, 200, time.monotonic()) < 1.0
            with statements() as warm:
                headers = host.auth(host.token(slug))
                assert (await host.client.get("/api/plugins/echo/whoami", headers=headers)).is_success
            assert warm == []  # A serves the tenant from its own L1

            seen = await eventually(host, slug, 403, await b.run("suspend", slug))
            seen_resumed = await eventually(host, slug, 200, await b.run("resume", slug))
            seen_deleted = await eventually(host, slug, 404, await b.run("delete", slug))
        finally:
            with contextlib.suppress(Exception):
                await host.platform.tenants.delete(slug)
    assert max(seen, seen_resumed, seen_deleted) < 1.0
    print(f"seen by A after: suspend {seen:.3f} s, resume {seen_resumed:.3f} s, delete {seen_deleted:.3f} s")
