"""CORS over HTTP: preflights answered before authentication, per-tenant origins, nothing for others."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx2
import pytest

from tests.e2e.conftest import Host

pytestmark = pytest.mark.anyio

MakeHost = Callable[..., AbstractAsyncContextManager[Host]]
NOTES = "/api/plugins/notes/notes"
APP = "https://app.example.com"
ACME_APP = "https://acme.example.org"
EVIL = "https://evil.example.net"


def preflight(origin: str, method: str = "POST", headers: str = "authorization, content-type") -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}


def cors_headers(response: httpx2.Response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name.lower().startswith("access-control-")}


@pytest.fixture
def cors_host(make_host: MakeHost) -> Callable[..., AbstractAsyncContextManager[Host]]:
    @contextlib.asynccontextmanager
    async def make(**http: Any) -> AsyncIterator[Host]:
        settings = {"cors_origins": [APP], "tenant_resolvers": ["token", "host", "path"], **http}
        settings.setdefault("tenant_host_suffix", "plexica.test")
        async with make_host(http=settings) as host:
            for slug in ("acme", "globex"):
                await host.platform.tenants.provision(slug)
            yield host

    return make


async def test_a_preflight_to_a_plugin_route_is_answered_without_credentials(cors_host: MakeHost) -> None:
    async with cors_host() as host:
        response = await host.client.options(NOTES, headers=preflight(APP))

        assert response.status_code == 200, response.text
        assert response.headers["access-control-allow-origin"] == APP
        assert "POST" in response.headers["access-control-allow-methods"]
        assert "authorization" in response.headers["access-control-allow-headers"].lower()
        assert response.headers["access-control-max-age"] == "600"
        assert "access-control-allow-credentials" not in response.headers


async def test_a_simple_request_gets_the_origin_and_exposed_headers(cors_host: MakeHost) -> None:
    async with cors_host() as host:
        headers = {"Origin": APP, **host.auth(host.token("acme"))}
        response = await host.client.get(NOTES, headers=headers)

        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == APP
        assert "Origin" in response.headers["vary"]
        assert "X-Trace-ID" in response.headers["access-control-expose-headers"]


async def test_a_problem_sent_to_an_allowed_origin_is_readable_by_it(cors_host: MakeHost) -> None:
    async with cors_host() as host:
        response = await host.client.get(NOTES, headers={"Origin": APP, "Host": "acme.plexica.test"})

        assert response.status_code == 401
        assert response.headers["access-control-allow-origin"] == APP


async def test_an_origin_that_is_not_allowed_gets_no_cors_headers(cors_host: MakeHost) -> None:
    async with cors_host() as host:
        refused = await host.client.options(NOTES, headers=preflight(EVIL))
        assert cors_headers(refused) == {}
        assert refused.status_code in (401, 405)  # the normal stack answered, not CORS
        assert "Origin" in refused.headers["vary"]

        simple = await host.client.get(NOTES, headers={"Origin": EVIL, **host.auth(host.token("acme"))})
        assert simple.status_code == 200
        assert cors_headers(simple) == {}


async def test_without_configured_origins_there_is_no_cors_at_all(make_host: MakeHost) -> None:
    async with make_host() as host:
        response = await host.client.options(NOTES, headers=preflight(APP))
        assert cors_headers(response) == {}


async def test_credentials_are_allowed_only_when_configured(cors_host: MakeHost) -> None:
    async with cors_host(cors_credentials=True) as host:
        answered = await host.client.options(NOTES, headers=preflight(APP))
        assert answered.headers["access-control-allow-credentials"] == "true"
        assert answered.headers["access-control-allow-origin"] == APP  # never "*" with credentials

        simple = await host.client.get(NOTES, headers={"Origin": APP, **host.auth(host.token("acme"))})
        assert simple.headers["access-control-allow-credentials"] == "true"


async def test_a_disallowed_method_or_header_is_refused_for_an_allowed_origin(cors_host: MakeHost) -> None:
    async with cors_host(cors_methods=["GET"]) as host:
        response = await host.client.options(NOTES, headers=preflight(APP, method="DELETE"))
        assert response.status_code == 400
        assert "access-control-allow-origin" in response.headers  # the origin is fine: the browser reports why

        headers = await host.client.options(NOTES, headers=preflight(APP, method="GET", headers="x-secret"))
        assert headers.status_code == 400


@pytest.mark.parametrize(
    ("path", "host_header"),
    [("/t/{slug}" + NOTES, "testserver"), (NOTES, "{slug}.plexica.test")],
    ids=["path-prefix", "host-name"],
)
async def test_tenant_origins_apply_only_to_that_tenant(cors_host: MakeHost, path: str, host_header: str) -> None:
    async with cors_host(cors_tenant_origins={"acme": [ACME_APP]}) as host:

        async def ask(slug: str, origin: str) -> httpx2.Response:
            headers = {**preflight(origin), "Host": host_header.format(slug=slug)}
            return await host.client.options(path.format(slug=slug), headers=headers)

        allowed = await ask("acme", ACME_APP)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == ACME_APP
        assert cors_headers(await ask("globex", ACME_APP)) == {}
        assert (await ask("globex", APP)).headers["access-control-allow-origin"] == APP  # the global list still applies
