"""The warm request path at its floor: what one ``GET /api/plugins/notes/notes`` costs in round trips.

Counted on the real backends, not estimated: SQL statements through SQLAlchemy's cursor events,
BEGIN/COMMIT through asyncpg's query logger (they bypass the cursor), and cache calls through a
counting wrapper around the real cache (docs/architecture.md, "The request path at the floor").
The numbers are exact on purpose: a change that adds a round trip to every request fails here.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa

from plexica.cache.base import ManagedCache, get_many
from plexica.cache.factory import create_cache
from plexica.cli.main import server_implementations
from plexica.settings import CacheSettings
from plexica_sdk import PluginManifest, hookimpl
from tests.e2e.conftest import Host
from tests.fixtures.sql import recorded_statements

pytestmark = pytest.mark.anyio

MakeHost = Callable[..., AbstractAsyncContextManager[Host]]
NOTES = "/api/plugins/notes/notes"


class CountingCache:
    """The real cache, with every call counted by name (an ``MGET`` is one ``get_many``)."""

    def __init__(self, inner: ManagedCache) -> None:
        self.inner = inner
        self.calls: collections.Counter[str] = collections.Counter()

    async def __aenter__(self) -> CountingCache:
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.inner.__aexit__(*exc)

    async def get(self, key: str) -> bytes | None:
        self.calls["get"] += 1
        return await self.inner.get(key)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        self.calls["get_many"] += 1
        return await get_many(self.inner, keys)

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        self.calls["set"] += 1
        await self.inner.set(key, value, ttl=ttl)

    async def delete(self, *keys: str) -> int:
        self.calls["delete"] += 1
        return await self.inner.delete(*keys)

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        self.calls["incr"] += 1
        return await self.inner.incr(key, amount, ttl=ttl)

    async def delete_prefix(self, prefix: str) -> int:
        self.calls["delete_prefix"] += 1
        return await self.inner.delete_prefix(prefix)


class CountingBroadcastCache(CountingCache):
    """Redis: also the pub/sub channel the layered cache listens on (not counted: not per request)."""

    async def publish(self, channel: str, message: bytes) -> None:
        self.calls["publish"] += 1
        await self.inner.publish(channel, message)  # type: ignore[attr-defined]

    def listen(self, channel: str, on_subscribed: Callable[[], None]) -> AsyncIterator[bytes]:
        return self.inner.listen(channel, on_subscribed)  # type: ignore[attr-defined,no-any-return]


class ProvideCache:
    """A plugin handing the host its cache (the ``plexica_cache_backend`` provider hook)."""

    def __init__(self, cache: CountingCache) -> None:
        self.cache = cache

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(name="counting-cache", version="0.1.0")

    @hookimpl
    def plexica_cache_backend(self) -> CountingCache:
        return self.cache


@contextlib.contextmanager
def driver_queries() -> Iterator[list[str]]:
    """Every query asyncpg runs outside prepared statements (BEGIN, COMMIT, ROLLBACK, pings)."""
    seen: list[str] = []
    logged: set[int] = set()

    def on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        driver = getattr(dbapi_connection, "driver_connection", None)
        if isinstance(driver, asyncpg.Connection) and id(driver) not in logged:
            logged.add(id(driver))
            driver.add_query_logger(lambda record: seen.append(record.query))

    sa.event.listen(sa.pool.Pool, "checkout", on_checkout)
    try:
        yield seen
    finally:
        sa.event.remove(sa.pool.Pool, "checkout", on_checkout)


@pytest.fixture(
    params=[
        pytest.param(None, id="sqlite+memory"),
        pytest.param("redis_url", id="postgres+redis", marks=[pytest.mark.postgres, pytest.mark.redis]),
    ]
)
def backends(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param is None:
        return {}
    return {
        "database": {"url": request.getfixturevalue("postgres_url")},
        "cache": {"redis_url": request.getfixturevalue(request.param)},
    }


@contextlib.asynccontextmanager
async def counted_host(make_host: MakeHost, backends: dict[str, Any]) -> AsyncIterator[tuple[Host, CountingCache]]:
    redis_url = backends.get("cache", {}).get("redis_url")
    inner = create_cache(CacheSettings(redis_url=redis_url))
    cache = CountingBroadcastCache(inner) if redis_url else CountingCache(inner)
    async with make_host(plugins=[ProvideCache(cache)], **backends) as host:
        yield host, cache


async def test_a_warm_request_costs_one_select_and_no_cache_call(make_host: MakeHost, backends: dict[str, Any]) -> None:
    slug = f"r{uuid.uuid4().hex[:12]}"
    async with counted_host(make_host, backends) as (host, cache):
        await host.platform.tenants.provision(slug)
        try:
            headers = host.auth(host.token(slug))
            for _ in range(3):  # admits alice, loads the model, fills every layer
                assert (await host.client.get(NOTES, headers=headers)).status_code == 200
            await asyncio.sleep(0.6)  # past the second delete that follows provisioning's invalidations
            assert (await host.client.get(NOTES, headers=headers)).status_code == 200

            cache.calls.clear()
            with recorded_statements() as statements, driver_queries() as driver:
                response = await host.client.get(NOTES, headers=headers)
            assert response.status_code == 200, response.text
            assert len(statements) == 1 and statements[0].startswith("SELECT"), statements
            assert "notes" in statements[0]
            assert driver == []  # no BEGIN/COMMIT around the read, no pre-ping
            assert dict(cache.calls) == {}  # tenant, admission and subject all from the process L1

            # The L1 bound passes (forget_all is what expiry does): one MGET per stage, no write.
            host.platform.layered.forget_all()
            cache.calls.clear()
            with recorded_statements() as statements:
                assert (await host.client.get(NOTES, headers=headers)).status_code == 200
            assert len(statements) == 1
            assert dict(cache.calls) == {"get": 1, "get_many": 2}  # tenant config; admission; subject
        finally:
            await host.platform.tenants.delete(slug)


async def test_a_revocation_is_honoured_by_the_next_request_despite_the_l1(
    make_host: MakeHost, backends: dict[str, Any]
) -> None:
    slug = f"v{uuid.uuid4().hex[:12]}"
    async with counted_host(make_host, backends) as (host, _cache):
        platform = host.platform
        await platform.tenants.provision(slug)
        try:
            alice = host.auth(host.token(slug, "alice"))
            admin = host.auth(host.token(slug, "admin", roles=("tenant_admin",)))
            assert (await host.client.get(NOTES, headers=alice)).status_code == 200
            assert (await host.client.get(NOTES, headers=admin)).status_code == 200
            assert (await host.client.get(NOTES, headers=alice)).status_code == 200  # warm, from L1

            disabled = await host.client.post("/api/core/v1/users/alice/disable", headers=admin)
            assert disabled.status_code == 200, disabled.text
            assert (await host.client.get(NOTES, headers=alice)).status_code == 403
            enabled = await host.client.post("/api/core/v1/users/alice/enable", headers=admin)
            assert enabled.status_code == 200, enabled.text
            assert (await host.client.get(NOTES, headers=alice)).status_code == 200
        finally:
            await platform.tenants.delete(slug)


@pytest.mark.postgres
async def test_a_connection_the_server_terminated_does_not_fail_the_next_request(
    make_host: MakeHost, postgres_url: str
) -> None:
    slug = f"t{uuid.uuid4().hex[:12]}"
    async with make_host(database={"url": postgres_url}) as host:
        await host.platform.tenants.provision(slug)
        try:
            headers = host.auth(host.token(slug))
            pids: set[int] = set()

            def on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
                pids.add(dbapi_connection.driver_connection.get_server_pid())

            pool = host.platform.db._core_engine().sync_engine.pool
            sa.event.listen(pool, "checkout", on_checkout)
            try:
                for _ in range(3):
                    assert (await host.client.get(NOTES, headers=headers)).status_code == 200
            finally:
                sa.event.remove(pool, "checkout", on_checkout)
            assert pids

            admin = await asyncpg.connect(
                sa.make_url(postgres_url).set(drivername="postgresql").render_as_string(False)
            )
            try:  # only this host's pooled connections: other suites share the server
                await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", sorted(pids))
                for _ in range(100):
                    alive = await admin.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", sorted(pids)
                    )
                    if alive == 0:
                        break
                    await asyncio.sleep(0.02)
            finally:
                await admin.close()

            with driver_queries() as driver:
                response = await host.client.get(NOTES, headers=headers)
            assert response.status_code == 200, response.text
            assert ";" not in driver  # replaced at checkout, without a ping
        finally:
            await host.platform.tenants.delete(slug)


def test_plexica_serve_runs_on_uvloop_and_httptools() -> None:
    assert server_implementations() == ("uvloop", "httptools")  # uvicorn[standard] is a dependency
