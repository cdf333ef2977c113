"""Tenant resolution strategies over HTTP: token issuer, host name, signed header, path prefix."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx2
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from plexica.auth import GatewaySigner
from plexica_sdk import PluginManifest, context, hookimpl
from tests.e2e.conftest import Host

pytestmark = pytest.mark.anyio

MakeHost = Callable[..., AbstractAsyncContextManager[Host]]
NOTES = "/api/plugins/notes/notes"
KEY = "resolution-gateway-key"


class WherePlugin:
    """Echoes the tenant it runs for and what routing saw of the path."""

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(name="where", version="0.1.0")

    @hookimpl
    def plexica_routes(self) -> Sequence[Any]:
        async def here(request: Request) -> JSONResponse:
            return JSONResponse(
                {"tenant": context.current().slug, "path": request.url.path, "root_path": request.scope["root_path"]}
            )

        return [Route("/here", here)]


def assert_problem(response: httpx2.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture
def resolving_host(make_host: MakeHost) -> Callable[..., AbstractAsyncContextManager[Host]]:
    @contextlib.asynccontextmanager
    async def make(resolvers: Sequence[str], **overrides: Any) -> AsyncIterator[Host]:
        http = {"tenant_resolvers": list(resolvers), "tenant_host_suffix": "plexica.test", **overrides.pop("http", {})}
        async with make_host(plugins=[WherePlugin()], http=http, **overrides) as host:
            for slug in ("acme", "globex"):
                await host.platform.tenants.provision(slug)
            yield host

    return make


async def test_the_token_issuer_names_the_tenant_by_default(make_host: MakeHost) -> None:
    async with make_host(plugins=[WherePlugin()]) as host:
        await host.platform.tenants.provision("acme")
        response = await host.client.get("/api/plugins/where/here", headers=host.auth(host.token("acme")))
        assert response.json()["tenant"] == "acme"


async def test_the_host_name_names_the_tenant(resolving_host: MakeHost) -> None:
    async with resolving_host(["host"]) as host:
        headers = {**host.auth(host.token("globex")), "Host": "globex.plexica.test"}
        assert (await host.client.get("/api/plugins/where/here", headers=headers)).json()["tenant"] == "globex"
        assert_problem(await host.client.get(NOTES, headers={**headers, "Host": "acme.plexica.test"}), 404)
        assert_problem(await host.client.get(NOTES, headers={**headers, "Host": "Not_A_Slug.plexica.test"}), 404)


async def test_the_path_prefix_names_the_tenant_and_routes_see_the_rest(resolving_host: MakeHost) -> None:
    async with resolving_host(["token", "path"]) as host:
        response = await host.client.get("/t/acme/api/plugins/where/here", headers=host.auth(host.token("acme")))

        assert response.status_code == 200, response.text
        body = response.json()
        assert body["tenant"] == "acme"
        assert body["path"] == "/t/acme/api/plugins/where/here"  # the full path is kept for URLs and logs
        assert body["root_path"].startswith("/t/acme")
        listed = await host.client.get("/t/acme" + NOTES, headers=host.auth(host.token("acme")))
        assert listed.status_code == 200


async def test_an_anonymous_path_prefix_request_is_still_refused(resolving_host: MakeHost) -> None:
    async with resolving_host(["token", "path"]) as host:
        assert_problem(await host.client.get("/t/acme" + NOTES), 401)
        assert_problem(await host.client.get("/t/nobody" + NOTES), 404)
        assert_problem(await host.client.get("/t/ACME" + NOTES, headers=host.auth(host.token("acme"))), 404)


async def test_without_the_path_strategy_a_prefix_is_just_an_unknown_path(resolving_host: MakeHost) -> None:
    async with resolving_host(["token"]) as host:
        assert_problem(await host.client.get("/t/acme" + NOTES, headers=host.auth(host.token("acme"))), 404)


@pytest.mark.parametrize(
    "resolvers",
    [["token", "path", "host", "header"], ["path", "host", "header", "token"], ["path"], ["host"], ["header"]],
    ids=["token-first", "token-last", "path-only", "host-only", "header-only"],
)
async def test_a_token_for_one_tenant_never_acts_in_another_whatever_the_order(
    resolving_host: MakeHost, resolvers: list[str]
) -> None:
    async with resolving_host(resolvers) as host:
        acme = host.auth(host.token("acme", roles=["member", "notes-editor"]))
        attempts = [
            host.client.get("/t/globex" + NOTES, headers=acme),
            host.client.get(NOTES, headers={**acme, "Host": "globex.plexica.test"}),
            host.client.get(NOTES, headers={**acme, "X-Tenant-ID": "globex"}),
            host.client.post("/t/globex" + NOTES, headers=acme, json={"title": "planted"}),
        ]
        for attempt in attempts:
            response = await attempt
            assert response.status_code in (404, 401), response.text  # 401: the strategy is off and no tenant
            assert response.status_code != 200
            assert "acme" not in json.dumps(response.json())
        # Read globex's notes addressing it every way at once (all answers agree, so any order resolves it).
        globex = {**host.auth(host.token("globex")), "Host": "globex.plexica.test", "X-Tenant-ID": "globex"}
        path = "/t/globex" + NOTES if "path" in resolvers else NOTES
        globex_titles = await host.client.get(path, headers=globex)
        assert globex_titles.status_code == 200, globex_titles.text
        assert "planted" not in [note["title"] for note in globex_titles.json()["items"]]


async def test_addresses_that_disagree_are_not_found(resolving_host: MakeHost) -> None:
    async with resolving_host(["path", "host"]) as host:
        headers = {**host.auth(host.token("acme")), "Host": "globex.plexica.test"}
        assert_problem(await host.client.get("/t/acme" + NOTES, headers=headers), 404)


async def test_a_gateway_signed_header_names_the_tenant_in_token_mode(resolving_host: MakeHost) -> None:
    async with resolving_host(["header"], auth={"gateway_key": KEY}) as host:
        path = "/api/plugins/where/here"
        signed = GatewaySigner(KEY).headers("GET", path, tenant="acme", user="alice")
        response = await host.client.get(path, headers={**signed, **host.auth(host.token("acme"))})
        assert response.json()["tenant"] == "acme"

        unsigned = {"X-Tenant-ID": "acme", **host.auth(host.token("acme"))}
        assert_problem(await host.client.get(path, headers=unsigned), 401)  # a gateway key makes signing mandatory
        forged = {**GatewaySigner("not-the-key").headers("GET", path, tenant="acme", user="a"), **unsigned}
        assert_problem(await host.client.get(path, headers=forged), 401)


async def test_an_unsigned_header_is_trusted_only_in_development(resolving_host: MakeHost) -> None:
    async with resolving_host(["header"]) as host:  # environment "test" counts as development
        response = await host.client.get(
            "/api/plugins/where/here", headers={"X-Tenant-ID": "acme", **host.auth(host.token("acme"))}
        )
        assert response.json()["tenant"] == "acme"
