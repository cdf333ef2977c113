"""Rate limits over HTTP through ``create_app``: headers, 429s, plans, overrides, the tenant cap,
plugin costs, anonymous callers, Redis outages, and two host processes sharing one limit."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from plexica.auth import GatewaySigner
from plexica_sdk import hookimpl
from plexica_sdk.types import PluginManifest, RouteRateLimit
from tests.e2e.conftest import Host

pytestmark = pytest.mark.anyio

MakeHost = Callable[..., AbstractAsyncContextManager[Host]]
ME = "/api/core/v1/me"


def _plans(requests: int, tenant_requests: int | None = None, **more: dict[str, int]) -> dict[str, Any]:
    return {"plans": {"standard": {"requests": requests, "tenant_requests": tenant_requests}, **more}}


def _decisions(host: Host, decision: str) -> float:
    value = host.platform.metrics.registry.get_sample_value("rate_limit_decisions_total", {"decision": decision})
    return value or 0.0


async def test_limited_routes_carry_ratelimit_fields_and_the_excess_gets_429(make_host: MakeHost) -> None:
    async with make_host(rate_limit=_plans(3, 100)) as host:
        await host.platform.tenants.provision("acme")
        auth = host.auth(host.token("acme"))
        answers = [await host.client.get(ME, headers=auth) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert answers[0].headers["ratelimit-policy"] == '"user";q=3;w=60, "tenant";q=100;w=60'
        assert answers[0].headers["ratelimit"] == '"user";r=2;t=20, "tenant";r=99;t=1'
        assert re.match(r'"user";r=0;t=(59|60), ', answers[2].headers["ratelimit"])
        refused = answers[3]
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] in ("19", "20")  # a request refills every 20 s
        assert refused.headers["ratelimit"].startswith('"user";r=0;')
        body = refused.json()
        assert body["status"] == 429 and body["type"].endswith("/rate-limited") and body["policy"] == "user"
        assert body["trace_id"] == refused.headers["x-trace-id"]
        other_area = await host.client.get("/api/core/v1/plugins", headers=auth)  # another route class
        assert other_area.status_code == 200 and other_area.headers["ratelimit"].startswith('"user";r=2;')
        for path in ("/health", "/metrics", "/openapi.json"):
            assert "ratelimit" not in (await host.client.get(path)).headers
        assert _decisions(host, "allowed") == 4 and _decisions(host, "limited") == 1


async def test_premium_plan_and_per_tenant_override(make_host: MakeHost) -> None:
    limits = {**_plans(2, premium={"requests": 4}), "tenants": {"initech": {"requests": 1}}}
    async with make_host(rate_limit=limits) as host:
        await host.platform.tenants.provision("acme")
        await host.platform.tenants.provision("globex", plan="premium")
        await host.platform.tenants.provision("initech", plan="premium")

        async def admitted(slug: str) -> int:
            auth = host.auth(host.token(slug))
            statuses = [(await host.client.get(ME, headers=auth)).status_code for _ in range(6)]
            return statuses.count(200)

        assert [await admitted(slug) for slug in ("acme", "globex", "initech")] == [2, 4, 1]


async def test_tenant_cap_stops_one_tenants_users_and_spares_other_tenants(make_host: MakeHost) -> None:
    async with make_host(rate_limit=_plans(3, 4)) as host:
        for slug in ("acme", "globex"):
            await host.platform.tenants.provision(slug)
        alice, bob = host.auth(host.token("acme", "alice")), host.auth(host.token("acme", "bob"))
        assert [(await host.client.get(ME, headers=alice)).status_code for _ in range(3)] == [200] * 3
        assert (await host.client.get(ME, headers=bob)).status_code == 200
        capped = await host.client.get(ME, headers=bob)
        assert capped.status_code == 429 and capped.json()["policy"] == "tenant"
        assert (await host.client.get(ME, headers=host.auth(host.token("globex", "carol")))).status_code == 200


class MeteredPlugin:
    """Routes with manifest rate limits: an expensive export and an exempt webhook."""

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(
            name="metered",
            version="1.0.0",
            rate_limits=(
                RouteRateLimit(path="/export", methods=("POST",), cost=3),
                RouteRateLimit(path="/hooks/*", exempt=True),
            ),
        )

    @hookimpl
    def plexica_routes(self) -> Sequence[Any]:
        async def ok(request: Request) -> JSONResponse:
            return JSONResponse({"ok": True})

        return [Route("/export", ok, methods=["POST"]), Route("/hooks/{name}", ok, methods=["POST"])]


async def test_manifest_costs_and_exemptions(make_host: MakeHost) -> None:
    async with make_host(plugins=[MeteredPlugin()], rate_limit=_plans(4)) as host:
        await host.platform.tenants.provision("acme")
        auth = host.auth(host.token("acme"))
        first = await host.client.post("/api/plugins/metered/export", headers=auth)
        assert first.status_code == 200 and first.headers["ratelimit"].startswith('"user";r=1;')
        assert (await host.client.post("/api/plugins/metered/export", headers=auth)).status_code == 429
        for _ in range(6):
            hook = await host.client.post("/api/plugins/metered/hooks/github", headers=auth)
            assert hook.status_code == 200 and "ratelimit" not in hook.headers


async def test_anonymous_callers_are_limited_per_address(make_host: MakeHost) -> None:
    async with make_host(rate_limit={"anonymous_requests": 2}) as host:
        answers = [await host.client.get(ME) for _ in range(3)]
        assert [a.status_code for a in answers] == [401, 401, 429]
        assert answers[0].headers["ratelimit"].startswith('"anonymous";r=1;')  # refusals further in carry it too
        assert answers[0].headers["content-type"] == "application/problem+json"
        assert answers[0].headers["www-authenticate"].startswith("Bearer")


async def test_gateway_mode_limits_the_signed_tenant_and_user(make_host: MakeHost) -> None:
    key = "gateway-rate-limit-secret"
    async with make_host(auth={"mode": "gateway", "gateway_key": key}, rate_limit=_plans(2)) as host:
        await host.platform.tenants.provision("acme")

        def signed(user: str) -> dict[str, str]:
            return GatewaySigner(key).headers("GET", ME, tenant="acme", user=user, roles=("member",))

        statuses = [(await host.client.get(ME, headers=signed("alice"))).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        assert (await host.client.get(ME, headers=signed("bob"))).status_code == 200


async def test_disabled_rate_limits_add_nothing(make_host: MakeHost) -> None:
    async with make_host(rate_limit={"enabled": False, **_plans(1)}) as host:
        await host.platform.tenants.provision("acme")
        auth = host.auth(host.token("acme"))
        answers = [await host.client.get(ME, headers=auth) for _ in range(3)]
        assert [a.status_code for a in answers] == [200] * 3 and "ratelimit" not in answers[2].headers


@pytest.mark.redis
async def test_redis_limits_over_http(make_host: MakeHost, redis_url: str) -> None:
    slug = f"rl-{uuid.uuid4().hex[:10]}"
    async with make_host(cache={"redis_url": redis_url}, rate_limit=_plans(2, 50)) as host:
        await host.platform.tenants.provision(slug)
        auth = host.auth(host.token(slug))
        answers = [await host.client.get(ME, headers=auth) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert answers[1].headers["ratelimit"].startswith('"user";r=0;t=60, "tenant";r=48;')
        assert answers[2].headers["retry-after"] in ("29", "30")


class TcpRelay:
    """A loopback relay to a real server that a test can cut: the client then meets a real outage."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> TcpRelay:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.cut()

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self._writers += [writer, upstream_writer]

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        async with asyncio.TaskGroup() as group:
            group.create_task(pump(reader, upstream_writer))
            group.create_task(pump(upstream_reader, writer))


@contextlib.asynccontextmanager
async def _relay_to(redis_url: str) -> AsyncIterator[tuple[TcpRelay, str]]:
    parts = urlsplit(redis_url)
    async with TcpRelay((parts.hostname or "127.0.0.1", parts.port or 6379)) as relay:
        yield relay, parts._replace(netloc=f"127.0.0.1:{relay.port}").geturl()


@pytest.mark.redis
@pytest.mark.parametrize(("fail_mode", "status"), [("open", 404), ("closed", 503)], ids=["open", "closed"])
async def test_redis_outage_fails_open_or_closed_logged_and_counted(
    make_host: MakeHost, redis_url: str, fail_mode: str, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    async with _relay_to(redis_url) as (relay, relayed_url):
        limits = {"fail_mode": fail_mode, "anonymous_requests": 100}
        async with make_host(cache={"redis_url": relayed_url}, rate_limit=limits) as host:
            before = await host.client.get("/nope")
            assert before.status_code == 404 and before.headers["ratelimit-policy"] == '"anonymous";q=100;w=60'
            await relay.cut()
            during = [await host.client.get("/nope") for _ in range(2)]
            assert [d.status_code for d in during] == [status, status]
            assert "ratelimit" not in during[0].headers
            errors = host.platform.metrics.registry.get_sample_value(
                "rate_limit_backend_errors_total", {"backend": "redis"}
            )
            assert errors == 2 and _decisions(host, f"error_{fail_mode}") == 2
    warnings = [r for r in caplog.records if r.name == "plexica.http.ratelimit"]
    assert len(warnings) == 1 and f"failing {fail_mode}" in warnings[0].getMessage()  # once per 10 s, not per request
    assert str(relay.port) not in warnings[0].getMessage()


# ------------------------------------------------------------------ two real host processes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "plexica.cli", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@contextlib.contextmanager
def _servers(env: dict[str, str], count: int) -> Iterator[list[str]]:
    ports = [_free_port() for _ in range(count)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "plexica.cli", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for port in ports
    ]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        deadline = time.monotonic() + 120  # two cold starts on a busy machine
        for base, process in zip(bases, processes, strict=True):
            while True:
                try:
                    if httpx2.get(f"{base}/ready", timeout=1).status_code == 200:
                        break
                except httpx2.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"server did not start: {process.stderr.read() if process.stderr else ''}")
                time.sleep(0.1)
        yield bases
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.communicate(timeout=15)


@pytest.mark.slow
@pytest.mark.redis
def test_two_host_processes_sharing_one_redis_enforce_one_limit(tmp_path: Path, redis_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLEXICA_")}
    env |= {
        "PLEXICA_DATA_DIR": str(tmp_path / "data"),
        "PLEXICA_CACHE__REDIS_URL": redis_url,
        "PLEXICA_HTTP__ACCESS_LOG": "false",
        "PLEXICA_RATE_LIMIT__PLANS": '{"standard": {"requests": 4, "tenant_requests": 1000}}',
    }
    slug = f"rl-{uuid.uuid4().hex[:10]}"
    _cli(env, "tenants", "create", slug)
    auth = {"Authorization": f"Bearer {_cli(env, 'token', '--tenant', slug, '--user', 'alice')}"}
    with _servers(env, 2) as (first, second):
        answers = [httpx2.get(f"{base}{ME}", headers=auth, timeout=10) for base in (first, second) * 3]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 429, 429], [a.text for a in answers]
    remaining = [a.headers["ratelimit"].split(";")[1] for a in answers[:4]]
    assert remaining == ["r=3", "r=2", "r=1", "r=0"]  # one partition, counted by both processes
