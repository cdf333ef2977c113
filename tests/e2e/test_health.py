"""``/health`` and ``/ready`` tell the truth: real servers of the test's own are stopped and frozen.

Each dependency is started for the test on a free port (never the shared services), then killed
(``unavailable``) or SIGSTOPped (``timeout``: it accepts connections but never answers). The check
must answer within its bound either way, 503 when the dependency is required, and recover without
a host restart once the server is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from plexica import create_app
from plexica.observability.health import HealthChecker
from plexica.settings import Settings
from tests.e2e.conftest import Host
from tests.e2e.private_services import free_port, own_postgres, own_redis
from tests.fixtures.services import S3Config
from tests.plexica.events.outbox_support import own_tansu

pytestmark = pytest.mark.anyio

MakeHost = Callable[..., contextlib.AbstractAsyncContextManager[Host]]

BOUND = 0.5  # http.health_timeout_seconds in these tests
SLACK = 1.0  # scheduling on a loaded 2-core machine; a hang would take far longer
FAST_HEALTH = {"health_timeout_seconds": BOUND}
FAST_KAFKA = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 300, "metadata_max_age_ms": 1000}


async def get_health(host: Host, **headers: str) -> tuple[int, dict[str, Any], float]:
    started = time.perf_counter()
    response = await host.client.get("/health", headers=headers)
    return response.status_code, response.json(), time.perf_counter() - started


async def until_healthy(host: Host, seconds: float = 20.0) -> dict[str, Any]:
    """Poll ``/health`` until it is 200 with every check ok (recovery needs no host restart)."""
    deadline = time.monotonic() + seconds
    while True:
        status, body, _ = await get_health(host)
        if status == 200 and body["status"] == "ok":
            return body
        if time.monotonic() > deadline:
            pytest.fail(f"/health did not recover within {seconds} s: {body}")
        await asyncio.sleep(0.2)


def statuses(body: dict[str, Any]) -> dict[str, str]:
    return {name: check["status"] for name, check in body["checks"].items()}


async def test_embedded_health_lists_each_dependency_with_its_latency(make_host: MakeHost) -> None:
    async with make_host() as host:
        status, body, _ = await get_health(host)
        root = host.platform.objects.root  # type: ignore[attr-defined]
        shutil.rmtree(root)
        root.write_bytes(b"")  # the storage root is gone: nothing can be written there
        broken_status, broken, _ = await get_health(host)
        root.unlink()
        root.mkdir()
        assert (await get_health(host))[1]["status"] == "ok"
    assert (broken_status, broken["status"], statuses(broken)["object_store"]) == (200, "degraded", "unavailable")
    assert status == 200 and body["status"] == "ok"
    assert statuses(body) == {"database": "ok", "object_store": "ok"}  # the memory cache and bus cannot be down
    assert body["checks"]["database"]["required"] is True and body["checks"]["object_store"]["required"] is False
    assert all(0 <= check["latency_ms"] < BOUND * 1000 * 4 for check in body["checks"].values())
    assert "notes" in body["plugins"]


async def test_redis_killed_or_frozen_is_a_bounded_503_and_recovers(make_host: MakeHost, tmp_path: Path) -> None:
    async with (
        own_redis(tmp_path / "redis") as redis,
        # Fail-closed rate limits make Redis required (else it only degrades: tests/faults/test_redis_down.py).
        make_host(cache={"redis_url": redis.url}, http=FAST_HEALTH, rate_limit={"fail_mode": "closed"}) as host,
    ):
        body = await until_healthy(host)
        assert statuses(body) == {"database": "ok", "cache": "ok", "object_store": "ok"}

        redis.freeze()
        try:
            status, body, took = await get_health(host)
        finally:
            redis.thaw()
        assert (status, body["status"], statuses(body)["cache"]) == (503, "unavailable", "timeout")
        assert statuses(body)["database"] == "ok"
        assert body["checks"]["cache"]["latency_ms"] >= BOUND * 1000
        assert took < BOUND + SLACK
        await until_healthy(host)

        await redis.stop()
        status, body, took = await get_health(host)
        assert (status, statuses(body)["cache"]) == (503, "unavailable")
        assert "redis" in body["checks"]["cache"]["detail"] and took < BOUND + SLACK
        await redis.start()  # the same port: the pool reconnects
        await until_healthy(host)


async def test_broker_frozen_or_killed_is_a_bounded_503_and_recovers(make_host: MakeHost, tmp_path: Path) -> None:
    async with own_tansu(tmp_path) as broker:
        events = {
            "backend": "kafka",
            "bootstrap_servers": broker.bootstrap,
            "replication_factor": 1,
            "enable_idempotence": False,
            "kafka": FAST_KAFKA,
        }
        async with make_host(events=events, http=FAST_HEALTH) as host:
            body = await until_healthy(host)
            assert statuses(body)["broker"] == "ok" and body["checks"]["broker"]["required"] is True

            process = broker._process  # a hung broker: it holds the connection and never answers
            assert process is not None
            process.send_signal(signal.SIGSTOP)
            try:
                status, body, took = await get_health(host)
            finally:
                process.send_signal(signal.SIGCONT)
            assert (status, statuses(body)["broker"], took < BOUND + SLACK) == (503, "timeout", True)
            await until_healthy(host)

            await broker.stop()
            status, body, took = await get_health(host)
            assert status == 503 and body["status"] == "unavailable"
            assert statuses(body)["broker"] in ("unavailable", "timeout") and statuses(body)["database"] == "ok"
            assert took < BOUND + SLACK
            await broker.start()
            await until_healthy(host, seconds=30)


async def test_postgres_frozen_or_stopped_fails_health_and_ready_within_the_bound(make_host: MakeHost) -> None:
    async with (
        own_postgres() as postgres,
        make_host(database={"url": postgres.url, "pool_size": 2}, http=FAST_HEALTH) as host,
    ):
        await until_healthy(host)
        assert (await host.client.get("/ready")).status_code == 200

        postgres.freeze()
        try:
            status, body, took = await get_health(host)
            started = time.perf_counter()
            ready = await host.client.get("/ready")
            ready_took = time.perf_counter() - started
        finally:
            postgres.thaw()
        assert (status, statuses(body)["database"], statuses(body)["object_store"]) == (503, "timeout", "ok")
        assert took < BOUND + SLACK
        assert ready.status_code == 503 and ready.headers["content-type"].startswith("application/problem+json")
        assert ready.json()["status"] == 503 and ready_took < BOUND + SLACK
        await until_healthy(host)

        await postgres.stop()
        status, body, took = await get_health(host)
        assert (status, statuses(body)["database"]) == (503, "unavailable") and took < BOUND + SLACK
        assert (await host.client.get("/ready")).status_code == 503
        await postgres.start()
        await until_healthy(host)
        assert (await host.client.get("/ready")).status_code == 200


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never answers: a hung identity provider."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    port = free_port()
    server = await asyncio.start_server(accept, "127.0.0.1", port)
    try:
        yield port
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_hung_or_missing_identity_provider_only_degrades_the_host(make_host: MakeHost) -> None:
    async with silent_server() as port:
        keycloak = {"url": f"http://127.0.0.1:{port}"}
        async with make_host(auth={"keycloak": keycloak}, http=FAST_HEALTH) as host:
            status, body, took = await get_health(host)
            assert (status, body["status"], statuses(body)["identity"]) == (200, "degraded", "timeout")
            assert body["checks"]["identity"]["required"] is False and took < BOUND + SLACK
    async with make_host(auth={"keycloak": {"url": f"http://127.0.0.1:{free_port()}"}}, http=FAST_HEALTH) as host:
        status, body, _ = await get_health(host)
        assert (status, body["status"], statuses(body)["identity"]) == (200, "degraded", "unavailable")


@pytest.mark.keycloak
async def test_identity_probe_asks_the_platform_realm_discovery(make_host: MakeHost, keycloak_url: str) -> None:
    async with make_host(auth={"keycloak": {"url": keycloak_url, "platform_realm": "master"}}) as host:
        status, body, _ = await get_health(host)
        assert (status, statuses(body)["identity"]) == (200, "ok")
    async with make_host(auth={"keycloak": {"url": keycloak_url, "platform_realm": "no-such-realm"}}) as host:
        _, body, _ = await get_health(host)
        assert statuses(body)["identity"] == "unavailable" and "404" in body["checks"]["identity"]["detail"]


@pytest.mark.s3
async def test_object_store_probe_checks_signed_access_to_s3(make_host: MakeHost, s3_config: S3Config) -> None:
    storage = {
        "backend": "s3",
        "s3_endpoint": s3_config.endpoint,
        "s3_region": s3_config.region,
        "s3_access_key": s3_config.access_key,
        "s3_secret_key": s3_config.secret_key,
    }
    async with make_host(storage=storage) as host:
        status, body, _ = await get_health(host)
        assert (status, statuses(body)["object_store"]) == (200, "ok")  # the bucket need not exist
    async with make_host(storage={**storage, "s3_secret_key": "wrong"}) as host:
        status, body, _ = await get_health(host)
        assert (status, body["status"], statuses(body)["object_store"]) == (200, "degraded", "unavailable")


async def test_details_and_plugin_names_need_the_health_token_or_a_super_admin(make_host: MakeHost) -> None:
    http = {"health_details_public": False, "health_token": "health-secret-0123"}
    async with make_host(http=http) as host:
        await host.platform.tenants.provision("acme")
        anonymous = await host.client.get("/health")
        assert anonymous.status_code == 200 and anonymous.json() == {"status": "ok"}
        assert anonymous.headers["cache-control"] == "no-store"
        _, wrong, _ = await get_health(host, **{"X-Health-Token": "health-secret-9999"})
        member = host.auth(host.token("acme", roles=["tenant_admin"]))
        _, as_member, _ = await get_health(host, **member)
        assert wrong == as_member == {"status": "ok"}
        for headers in ({"X-Health-Token": "health-secret-0123"}, host.auth(host.admin_token())):
            _, body, _ = await get_health(host, **headers)
            assert "notes" in body["plugins"] and statuses(body)["database"] == "ok"


@pytest.mark.parametrize(
    ("environment", "public"), [("production", False), ("development", True), ("test", True)], ids=str
)
def test_only_production_hides_health_details_by_default(
    make_settings: Callable[..., Settings], environment: str, public: bool
) -> None:
    # Production needs a real identity provider; building the app connects to nothing.
    settings = make_settings(environment=environment, auth={"keycloak": {"url": "http://127.0.0.1:1"}})
    checker = create_app(settings).state.services.health
    assert isinstance(checker, HealthChecker) and checker.public_details is public
