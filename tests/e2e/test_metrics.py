"""``/metrics`` over HTTP: true counts per label set, mounted route templates, access control."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from plexica_sdk import PluginManifest, hookimpl
from tests.e2e.conftest import Host

pytestmark = pytest.mark.anyio

MakeHost = Callable[..., contextlib.AbstractAsyncContextManager[Host]]


class MemosPlugin:
    """A second plugin with the same inner path as the notes plugin (``/notes/{id}``)."""

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(name="memos", version="0.1.0")

    @hookimpl
    def plexica_routes(self) -> Sequence[Any]:
        async def memo(request: Request) -> JSONResponse:
            return JSONResponse({"id": request.path_params["id"]})

        return [Route("/notes/{id}", memo, methods=["GET"])]


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample of ``name`` by its sorted labels."""
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def requests_of(text: str, **labels: str) -> float:
    """The sum of ``http_requests_total`` over the series matching ``labels``."""
    return sum(
        value
        for key, value in samples(text, "http_requests_total").items()
        if all(dict(key).get(k) == v for k, v in labels.items())
    )


@pytest.fixture
async def host(make_host: MakeHost) -> AsyncIterator[Host]:
    async with make_host(plugins=[MemosPlugin()]) as running:
        for slug in ("acme", "globex"):
            await running.platform.tenants.provision(slug)
        yield running


async def test_counters_equal_the_requests_per_status_route_and_tenant(host: Host) -> None:
    acme = host.platform.tenants
    tenant_id = (await acme.get("acme")).id
    writer = host.auth(host.token("acme", user="alice", roles=["tenant_admin"]))
    reader = host.auth(host.token("acme", user="bob", roles=["member"]))
    created = await host.client.post("/api/plugins/notes/notes", json={"title": "x"}, headers=writer)
    assert created.status_code == 201, created.text
    note = created.json()["id"]
    for _ in range(4):
        assert (await host.client.get(f"/api/plugins/notes/notes/{note}", headers=writer)).status_code == 200
    for _ in range(3):
        assert (
            await host.client.post("/api/plugins/notes/notes", json={"title": "y"}, headers=reader)
        ).status_code == 403
    for path in ("/nope", "/api/nothing/here", "/x/y/z"):
        assert (await host.client.get(path)).status_code == 404
    for _ in range(2):
        assert (await host.client.get("/api/plugins/notes/notes")).status_code == 401  # refused before routing
    workspace = await host.client.get("/api/core/v1/workspaces/00000000-0000-0000-0000-000000000000", headers=writer)
    assert workspace.status_code == 404

    text = (await host.client.get("/metrics")).text
    get_note = {"method": "GET", "route": "/api/plugins/notes/notes/{id}"}
    assert requests_of(text, **get_note, status="200", tenant_id=tenant_id) == 4
    assert requests_of(text, method="POST", route="/api/plugins/notes/notes", status="403", tenant_id=tenant_id) == 3
    assert requests_of(text, method="POST", route="/api/plugins/notes/notes", status="201", tenant_id=tenant_id) == 1
    assert requests_of(text, status="500") == 0
    assert requests_of(text, route="<unmatched>", status="404", tenant_id="") == 3
    assert requests_of(text, route="/api/plugins/notes/*", status="401") == 2
    assert requests_of(text, route="/api/core/v1/workspaces/{workspace_id}", status="404", tenant_id=tenant_id) == 1
    durations = samples(text, "http_request_duration_seconds_count")
    assert durations[(("method", "GET"), ("route", "/api/plugins/notes/notes/{id}"), ("status", "200"))] == 4
    assert not any("/x/y/z" in dict(key).get("route", "") for key in samples(text, "http_requests_total"))


async def test_two_plugins_same_inner_path_stay_distinct(host: Host) -> None:
    token = host.auth(host.token("acme", user="alice", roles=["tenant_admin"]))
    for _ in range(2):
        assert (await host.client.get("/api/plugins/memos/notes/m1", headers=token)).status_code == 200
    assert (await host.client.get("/api/plugins/notes/notes/missing", headers=token)).status_code == 404
    text = (await host.client.get("/metrics")).text
    assert requests_of(text, route="/api/plugins/memos/notes/{id}", status="200") == 2
    assert requests_of(text, route="/api/plugins/notes/notes/{id}", status="404") == 1
    assert requests_of(text, route="/notes/{id}") == 0


async def test_active_tenants_and_events_published(host: Host) -> None:
    text = (await host.client.get("/metrics")).text
    assert samples(text, "active_tenants")[()] == 2
    assert samples(text, "active_plugins")[()] == len(host.platform.plugins.infos())
    await host.platform.tenants.suspend("globex")
    assert samples((await host.client.get("/metrics")).text, "active_tenants")[()] == 1
    await host.platform.tenants.provision("initech")
    await host.platform.tenants.delete("acme")
    assert samples((await host.client.get("/metrics")).text, "active_tenants")[()] == 1

    writer = host.auth(host.token("initech", user="alice", roles=["tenant_admin"]))
    tenant_id = (await host.platform.tenants.get("initech")).id
    for title in ("a", "b"):
        assert (
            await host.client.post("/api/plugins/notes/notes", json={"title": title}, headers=writer)
        ).status_code == 201
    await host.platform.relay.drain()
    published = samples((await host.client.get("/metrics")).text, "events_published_total")
    assert published[(("event_type", "notes.note.created"), ("tenant_id", tenant_id))] == 2


async def test_tenant_labels_beyond_the_limit_fold_into_other(make_host: MakeHost) -> None:
    async with make_host(metrics={"tenant_label_limit": 1}) as host:
        ids = [(await host.platform.tenants.provision(slug)).id for slug in ("acme", "globex", "initech")]
        for slug in ("acme", "globex", "globex", "initech"):
            token = host.auth(host.token(slug, user="alice"))
            assert (await host.client.get("/api/plugins/notes/notes", headers=token)).status_code == 200
        text = (await host.client.get("/metrics")).text
        route = {"method": "GET", "route": "/api/plugins/notes/notes", "status": "200"}
        assert requests_of(text, **route, tenant_id=ids[0]) == 1
        assert requests_of(text, **route, tenant_id="other") == 3
        tenants_seen = {dict(key)["tenant_id"] for key in samples(text, "http_requests_total")}
        assert ids[1] not in tenants_seen and ids[2] not in tenants_seen


async def test_metrics_can_be_disabled(make_host: MakeHost) -> None:
    async with make_host(metrics={"enabled": False}) as host:
        assert (await host.client.get("/metrics")).status_code == 404


async def test_metrics_behind_a_bearer_secret(make_host: MakeHost) -> None:
    async with make_host(metrics={"token": "s3cret-scrape"}) as host:
        anonymous = await host.client.get("/metrics")
        assert anonymous.status_code == 401
        assert anonymous.headers["content-type"] == "application/problem+json"
        assert b"tenant_id" not in anonymous.content
        assert (await host.client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
        granted = await host.client.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape"})
        assert granted.status_code == 200 and b"http_requests_total" in granted.content


async def test_production_does_not_serve_tenant_ids_anonymously(make_host: MakeHost) -> None:
    production = {
        "environment": "production",
        "secret_key": "k" * 32,
        "auth": {"keycloak": {"url": "http://127.0.0.1:1"}},
    }
    async with make_host(**production) as host:
        assert (await host.client.get("/metrics")).status_code == 404
    async with make_host(**production, metrics={"token": "t0ken"}) as host:
        assert (await host.client.get("/metrics")).status_code == 401
        assert (await host.client.get("/metrics", headers={"Authorization": "Bearer t0ken"})).status_code == 200


async def _scrape_port(port: int, authorization: str | None = None) -> httpx2.Response:
    headers = {"Authorization": authorization} if authorization else {}
    async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        return await client.get("/metrics", headers=headers)


async def test_metrics_on_a_separate_port(make_host: MakeHost) -> None:
    async with make_host(metrics={"port": 0, "token": "p0rt"}) as host:
        port = host.app.state.metrics_port
        assert isinstance(port, int) and port > 0
        assert (await host.client.get("/metrics")).status_code == 404  # not on the main port
        await host.platform.tenants.provision("acme")
        token = host.auth(host.token("acme", user="alice"))
        for _ in range(2):
            await host.client.get("/api/plugins/notes/notes", headers=token)
        assert (await _scrape_port(port)).status_code == 401
        scraped = await _scrape_port(port, "Bearer p0rt")
        assert scraped.status_code == 200
        assert requests_of(scraped.text, route="/api/plugins/notes/notes", status="200") == 2
        async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/other")).status_code == 404
    with pytest.raises(httpx2.ConnectError):  # closed with the host
        await asyncio.wait_for(_scrape_port(port, "Bearer p0rt"), 5)
