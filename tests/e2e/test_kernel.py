"""The kernel end to end, in-process: tenants, auth, plugin routes, errors, the request path."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from plexica_sdk import PluginManifest, hookimpl
from tests.e2e.conftest import Host

pytestmark = pytest.mark.anyio

MakeHost = Callable[..., AbstractAsyncContextManager[Host]]


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert "Traceback" not in response.text
    return body


async def create_note(host: Host, tenant: str, title: str = "hello") -> dict[str, Any]:
    token = host.token(tenant, roles=["member", "notes-editor"])
    response = await host.client.post("/api/plugins/notes/notes", json={"title": title}, headers=host.auth(token))
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_notes_of_one_tenant_are_invisible_to_another(host: Host) -> None:
    note = await create_note(host, "acme", "acme secret plan")
    globex = host.auth(host.token("globex", roles=["member", "notes-editor"]))

    listed = await host.client.get("/api/plugins/notes/notes", headers=globex)
    assert listed.status_code == 200
    assert all(item["id"] != note["id"] for item in listed.json()["items"])

    direct = await host.client.get(f"/api/plugins/notes/notes/{note['id']}", headers=globex)
    body = assert_problem(direct, 404)
    assert "acme" not in json.dumps(body)

    own = await host.client.get(f"/api/plugins/notes/notes/{note['id']}", headers=host.auth(host.token("acme")))
    assert own.json()["title"] == "acme secret plan"


async def test_token_of_tenant_a_addressing_tenant_b_is_not_found(host: Host) -> None:
    headers = {**host.auth(host.token("acme")), "X-Tenant-ID": "globex"}
    body = assert_problem(await host.client.get("/api/plugins/notes/notes", headers=headers), 404)
    assert "globex" not in json.dumps(body) and "acme" not in json.dumps(body)


@pytest.mark.parametrize(
    "make_header",
    [
        lambda host: {},
        lambda host: {"Authorization": "Bearer not-a-jwt"},
        lambda host: {"Authorization": "Basic dXNlcjpwYXNz"},
        lambda host: host.auth(host.token("acme", expires_in=-120)),
        lambda host: host.auth(_foreign_token()),
    ],
    ids=["missing", "malformed", "wrong-scheme", "expired", "foreign-signed"],
)
async def test_bad_tokens_get_401_problem(host: Host, make_header: Callable[[Host], dict[str, str]]) -> None:
    response = await host.client.get("/api/plugins/notes/notes", headers={**make_header(host), "X-Tenant-ID": "acme"})
    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "eyJ" not in json.dumps(body)  # the token is never echoed


def _foreign_token() -> str:
    """A token shaped exactly like ours, signed by another issuer's key."""
    import tempfile
    from pathlib import Path

    from plexica.auth import DevIssuer

    other = DevIssuer(Path(tempfile.mkdtemp()) / "key.json", base_url="http://plexica.localhost")
    return other.mint(realm="tenant-acme", subject="mallory", roles=["tenant_admin"])


async def test_suspended_tenant_is_refused_at_once_and_resumes(host: Host) -> None:
    token = host.auth(host.token("acme"))
    assert (await host.client.get("/api/plugins/notes/notes", headers=token)).status_code == 200
    admin = host.auth(host.admin_token())
    assert (await host.client.post("/api/core/v1/tenants/acme/suspend", headers=admin)).status_code == 200
    assert_problem(await host.client.get("/api/plugins/notes/notes", headers=token), 403)
    assert (await host.client.post("/api/core/v1/tenants/acme/resume", headers=admin)).status_code == 200
    assert (await host.client.get("/api/plugins/notes/notes", headers=token)).status_code == 200


async def test_member_without_write_permission_is_forbidden(host: Host) -> None:
    reader = host.auth(host.token("acme", user="bob", roles=["member"]))
    response = await host.client.post("/api/plugins/notes/notes", json={"title": "x"}, headers=reader)
    body = assert_problem(response, 403)
    assert "notes:note:write" not in json.dumps(body)  # 403 bodies never name the missing permission
    assert (await host.client.get("/api/plugins/notes/notes", headers=reader)).status_code == 200


@pytest.mark.parametrize("slug", ["A", "Acme", "-acme", "acme-", "ac", "a" * 51, "acme_corp", "ac--me"])
async def test_bad_slug_is_422(host: Host, slug: str) -> None:
    response = await host.client.post(
        "/api/core/v1/tenants", json={"slug": slug}, headers=host.auth(host.admin_token())
    )
    body = assert_problem(response, 422)
    assert body["errors"][0]["field"] == "slug"


async def test_tenant_admin_routes_need_a_super_admin(host: Host) -> None:
    tenant_admin = host.auth(host.token("acme", roles=["tenant_admin", "super_admin"]))
    assert_problem(await host.client.get("/api/core/v1/tenants", headers=tenant_admin), 403)
    listed = await host.client.get("/api/core/v1/tenants", headers=host.auth(host.admin_token()))
    assert [t["slug"] for t in listed.json()["items"]] == ["acme", "globex"]


async def test_unknown_paths_are_404_problems(host: Host) -> None:
    token = host.auth(host.token("acme"))
    assert_problem(await host.client.get("/api/plugins/nope/things", headers=token), 404)
    assert_problem(await host.client.get("/api/plugins/notes/nope", headers=token), 404)
    assert_problem(await host.client.get("/api/core/v1/nope", headers=token), 404)
    assert_problem(await host.client.get("/nope"), 404)


async def test_invalid_note_input_is_422_naming_the_field(host: Host) -> None:
    token = host.auth(host.token("acme", roles=["notes-editor"]))
    body = assert_problem(await host.client.post("/api/plugins/notes/notes", json={"title": ""}, headers=token), 422)
    assert body["errors"][0]["field"] == "title"
    assert_problem(await host.client.post("/api/plugins/notes/notes", content=b"{", headers=token), 422)


async def test_trace_id_is_propagated_or_generated(host: Host) -> None:
    given = await host.client.get("/health", headers={"X-Trace-ID": "trace-1234567890"})
    assert given.headers["x-trace-id"] == "trace-1234567890"
    generated = await host.client.get("/health", headers={"X-Trace-ID": "bad id!"})
    assert len(generated.headers["x-trace-id"]) == 32
    problem = await host.client.get("/nope", headers={"X-Trace-ID": "trace-abcdefghij"})
    assert problem.json()["trace_id"] == "trace-abcdefghij"


async def test_access_log_has_tenant_user_trace_and_no_token(host: Host, caplog: pytest.LogCaptureFixture) -> None:
    token = host.token("acme", user="carol")
    with caplog.at_level(logging.INFO, logger="plexica.access"):
        await host.client.get(
            "/api/plugins/notes/notes?access_token=secret", headers={**host.auth(token), "X-Trace-ID": "trace-log-0001"}
        )
    record = next(r for r in caplog.records if r.name == "plexica.access")
    fields = record.__dict__
    assert (fields["tenant"], fields["user"], fields["trace_id"], fields["status"]) == (
        "acme",
        "carol",
        "trace-log-0001",
        200,
    )
    assert fields["path"] == "/api/plugins/notes/notes"
    from plexica.observability.logging import JsonFormatter

    line = JsonFormatter().format(record)
    assert token not in line and "secret" not in line
    assert json.loads(line)["tenant"] == "acme"


async def test_health_ready_openapi_and_metrics(host: Host) -> None:
    assert (await host.client.get("/health")).json()["status"] == "ok"
    assert (await host.client.get("/ready")).status_code == 200
    spec = (await host.client.get("/openapi.json")).json()
    assert "/api/core/v1/tenants" in spec["paths"] and "/api/plugins/notes/notes" in spec["paths"]
    await host.client.get("/health")
    assert b"http_requests_total" in (await host.client.get("/metrics")).content


def _requests_counted(metrics: str, status: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("http_requests_total{") and f'status="{status}"' in line
    )


async def test_refusals_are_logged_and_counted_with_the_status_the_client_got(
    host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    reader = host.auth(host.token("acme", user="bob", roles=["member"]))
    before = (await host.client.get("/metrics")).text
    with caplog.at_level(logging.INFO, logger="plexica.access"):
        for _ in range(3):
            assert_problem(await host.client.post("/api/plugins/notes/notes", json={"title": "x"}, headers=reader), 403)
    after = (await host.client.get("/metrics")).text
    assert _requests_counted(after, "403") - _requests_counted(before, "403") == 3
    assert _requests_counted(after, "500") == _requests_counted(before, "500")
    statuses = [r.__dict__["status"] for r in caplog.records if r.name == "plexica.access"]
    assert statuses == [403, 403, 403]


async def test_me_and_plugins_list(host: Host) -> None:
    token = host.auth(host.token("acme", user="dave", roles=["member"]))
    created = await host.client.post("/api/core/v1/workspaces", json={"name": "Sales", "slug": "sales"}, headers=token)
    assert created.status_code == 201, created.text
    workspace = created.json()["id"]
    me = (await host.client.get("/api/core/v1/me", headers={**token, "X-Workspace-ID": workspace})).json()
    assert (me["id"], me["tenant"], me["workspace"], me["is_super_admin"]) == ("dave", "acme", workspace, False)
    foreign = await host.client.get("/api/core/v1/me", headers={**token, "X-Workspace-ID": "not-a-workspace"})
    assert_problem(foreign, 404)
    plugins = (await host.client.get("/api/core/v1/plugins", headers=token)).json()["items"]
    assert {p["name"]: p["installed"] for p in plugins} == {"core": True, "notes": True}


async def test_core_tenant_created_event_reaches_the_notes_plugin_in_tenant_context(host: Host) -> None:
    token = host.auth(host.token("globex"))
    for _ in range(100):
        items = (await host.client.get("/api/plugins/notes/notes", headers=token)).json()["items"]
        if items:
            break
        await asyncio.sleep(0.02)
    assert [item["body"] for item in items] == ["Tenant globex is ready."]


class FaultyPlugin:
    """Raises from every hook it implements, sync and async, and from its route."""

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(name="faulty", version="0.1.0")

    @hookimpl
    async def plexica_host_started(self) -> None:
        raise RuntimeError("boom at start")

    @hookimpl
    def plexica_tenant_suspended(self) -> None:
        raise RuntimeError("boom on suspend")

    @hookimpl
    def plexica_routes(self) -> Sequence[Any]:
        async def explode(request: Request) -> JSONResponse:
            raise RuntimeError("boom in a route")

        return [Route("/explode", explode)]


async def test_a_plugin_whose_hooks_raise_does_not_take_the_host_down(make_host: MakeHost) -> None:
    async with make_host(plugins=[FaultyPlugin()]) as host:
        await host.platform.tenants.provision("acme")
        token = host.auth(host.token("acme"))
        body = assert_problem(await host.client.get("/api/plugins/faulty/explode", headers=token), 500)
        assert "boom" not in json.dumps(body)
        suspended = await host.platform.tenants.suspend("acme")
        assert suspended.status == "suspended"
        await host.platform.tenants.resume("acme")
        assert (await host.client.get("/api/plugins/notes/notes", headers=token)).status_code == 200
        assert (await host.client.get("/health")).json()["status"] == "ok"


async def test_local_presigned_urls_upload_and_download_through_the_host(host: Host) -> None:
    store = host.platform.objects
    await store.create_bucket("tenant-acme")
    put_url = await store.presigned_url("tenant-acme", "docs/a.txt", method="PUT")
    uploaded = await host.client.put(put_url, content=b"hello", headers={"Content-Type": "text/plain"})
    assert uploaded.status_code == 201, uploaded.text
    get_url = await store.presigned_url("tenant-acme", "docs/a.txt")
    downloaded = await host.client.get(get_url)
    assert downloaded.content == b"hello"
    assert downloaded.headers["content-type"].startswith("text/plain")
    assert_problem(await host.client.get(get_url.replace("signature=", "signature=0")), 403)
    assert_problem(await host.client.put(get_url, content=b"x"), 403)  # a GET URL does not allow a PUT
