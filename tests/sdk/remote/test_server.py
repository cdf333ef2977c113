"""The remote plugin server in process: every call but manifest and health needs the host's token first."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx2
import pytest
from joserfc.jwk import OKPKey
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from plexica_sdk import context, hookimpl, http
from plexica_sdk.converter import structure
from plexica_sdk.errors import AuthenticationError, NotFoundError, PluginCallError, PluginLoadError, ValidationError
from plexica_sdk.protocols import Host
from plexica_sdk.remote import (
    CONTEXT_HEADER,
    CONTEXT_SCOPE_KEY,
    PROTOCOL_HEADER,
    ContextVerifier,
    RemoteContext,
    create_app,
    decode_problem,
)
from plexica_sdk.types import PermissionDef, PluginManifest, TenantContext
from tests.sdk.remote.tokens import claims, jwks_of, new_key, sign

pytestmark = pytest.mark.anyio


async def whoami(request: Request) -> JSONResponse:
    ctx = context.current()
    remote: RemoteContext = request.scope[CONTEXT_SCOPE_KEY]
    user = ctx.user
    return JSONResponse(
        {
            "tenant": ctx.slug,
            "user": user.id if user else None,
            "jti": remote.jti,
            "has_host": "plexica.host" in request.scope,
        }
    )


async def echo(request: Request) -> JSONResponse:
    return JSONResponse(await http.json_body(request))


class EchoPlugin:
    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(name="echo", version="1.2.0", permissions=(PermissionDef(key="echo:thing:read"),))

    @hookimpl
    def plexica_permissions(self) -> list[PermissionDef]:
        return [PermissionDef(key="echo:thing:write", description="Write things")]

    @hookimpl
    async def plexica_resource_attributes(
        self, resource_type: str, resource_id: str, tenant: TenantContext
    ) -> Mapping[str, Any] | None:
        if resource_id == "missing":
            raise NotFoundError("no such thing", resource="thing")
        if resource_id == "boom":
            raise RuntimeError("row of tenant acme: secret")
        return {"type": resource_type, "id": resource_id, "tenant": tenant.slug, "current": context.current().slug}

    @hookimpl
    def plexica_tenant_provisioned(self, tenant: TenantContext, host: Host) -> None:
        raise AssertionError("never reached without a host factory")

    @hookimpl
    def plexica_routes(self) -> list[Route]:
        return [Route("/whoami", whoami), Route("/echo", echo, methods=["POST"])]


@pytest.fixture
def key() -> OKPKey:
    return new_key()


@pytest.fixture
async def client(key: OKPKey) -> AsyncIterator[httpx2.AsyncClient]:
    async def jwks() -> Mapping[str, Any]:
        return jwks_of(key)

    app = create_app(EchoPlugin(), verifier=ContextVerifier("echo", jwks))
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://echo") as client:
        yield client


_counter = iter(range(1_000_000))


def token(key: OKPKey, **changes: Any) -> dict[str, str]:
    import time

    payload = claims(audience="echo", jti=f"j-{next(_counter)}", issued_at=time.time(), **changes)
    return {CONTEXT_HEADER: sign(key, payload)}


def raised(response: httpx2.Response) -> Exception:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return decode_problem(response.status_code, response.json(), plugin="echo")


async def rpc(client: httpx2.AsyncClient, key: OKPKey, hook: str, **args: Any) -> httpx2.Response:
    return await client.post("/.plexica/rpc", json={"hook": hook, "args": args}, headers=token(key))


async def test_manifest_and_health_need_no_token(client: httpx2.AsyncClient) -> None:
    manifest = await client.get("/.plexica/manifest")
    assert manifest.status_code == 200 and manifest.headers[PROTOCOL_HEADER] == "1"
    assert structure(manifest.json(), PluginManifest).name == "echo"
    health = (await client.get("/.plexica/health")).json()
    assert health["status"] == "ok" and health["protocol"] == 1 and health["version"] == "1.2.0"
    assert health["hooks"] == [
        "plexica_manifest",
        "plexica_permissions",
        "plexica_resource_attributes",
        "plexica_tenant_provisioned",
    ]


async def test_a_hook_call_returns_the_converted_result(client: httpx2.AsyncClient, key: OKPKey) -> None:
    response = await rpc(client, key, "plexica_permissions")
    assert response.status_code == 200, response.text
    assert response.json() == {"result": [{"key": "echo:thing:write", "description": "Write things"}]}


async def test_a_hook_runs_in_the_signed_tenant_context_which_the_body_cannot_name(
    client: httpx2.AsyncClient, key: OKPKey
) -> None:
    response = await rpc(client, key, "plexica_resource_attributes", resource_type="thing", resource_id="t1")
    assert response.json()["result"] == {"type": "thing", "id": "t1", "tenant": "acme", "current": "acme"}
    smuggled = await rpc(client, key, "plexica_resource_attributes", resource_type="t", resource_id="1", tenant={})
    assert isinstance(raised(smuggled), ValidationError) and smuggled.status_code == 422


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-token"),
        pytest.param({CONTEXT_HEADER: "garbage"}, id="garbage"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="basic-auth"),
    ],
)
async def test_rpc_without_a_valid_token_is_a_401_problem_before_the_body_is_read(
    client: httpx2.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.post("/.plexica/rpc", content=b"{not json", headers=headers)
    assert response.status_code == 401
    assert isinstance(raised(response), AuthenticationError)


async def test_a_bearer_token_is_accepted_too(client: httpx2.AsyncClient, key: OKPKey) -> None:
    bearer = {"Authorization": "Bearer " + token(key)[CONTEXT_HEADER]}
    response = await client.post("/.plexica/rpc", json={"hook": "plexica_permissions"}, headers=bearer)
    assert response.status_code == 200, response.text


async def test_a_token_for_another_plugin_is_refused(client: httpx2.AsyncClient, key: OKPKey) -> None:
    payload = claims(audience="notes", jti="other-plugin")
    response = await client.post(
        "/.plexica/rpc", json={"hook": "plexica_permissions"}, headers={CONTEXT_HEADER: sign(key, payload)}
    )
    assert response.status_code == 401 and "another plugin" in str(raised(response))


async def test_typed_errors_come_back_as_themselves(client: httpx2.AsyncClient, key: OKPKey) -> None:
    missing = await rpc(client, key, "plexica_resource_attributes", resource_type="thing", resource_id="missing")
    error = raised(missing)
    assert missing.status_code == 404 and type(error) is NotFoundError and error.resource == "thing"
    bug = await rpc(client, key, "plexica_resource_attributes", resource_type="thing", resource_id="boom")
    error = raised(bug)
    assert bug.status_code == 500 and type(error) is PluginCallError
    assert error.hook == "plexica_resource_attributes" and "secret" not in bug.text


async def test_unknown_unimplemented_local_and_host_needing_hooks_are_refused(
    client: httpx2.AsyncClient, key: OKPKey
) -> None:
    for hook in ("plexica_routes", "plexica_policies", "os.system"):
        response = await rpc(client, key, hook)
        assert response.status_code == 404 and isinstance(raised(response), NotFoundError), hook
    needs_host = await rpc(client, key, "plexica_tenant_provisioned")
    assert needs_host.status_code == 500 and isinstance(raised(needs_host), PluginCallError)
    bad = await client.post("/.plexica/rpc", json=["plexica_permissions"], headers=token(key))
    assert bad.status_code == 422 and isinstance(raised(bad), ValidationError)


async def test_plugin_routes_run_natively_in_the_verified_tenant_context(
    client: httpx2.AsyncClient, key: OKPKey
) -> None:
    response = await client.get("/whoami", headers=token(key))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["tenant"], body["user"], body["has_host"]) == ("acme", "u-1", False)
    assert body["jti"].startswith("j-")  # the verified RemoteContext is in the route's scope
    assert response.headers[PROTOCOL_HEADER] == "1"
    echoed = await client.post("/echo", json={"a": [1, 2]}, headers=token(key))
    assert echoed.json() == {"a": [1, 2]}


async def test_plugin_routes_refuse_missing_and_tenantless_tokens(client: httpx2.AsyncClient, key: OKPKey) -> None:
    assert (await client.get("/whoami")).status_code == 401
    tenantless = await client.get("/whoami", headers=token(key, tenant=None))
    assert tenantless.status_code == 401 and isinstance(raised(tenantless), AuthenticationError)
    unknown = await client.get("/nope", headers=token(key))
    assert unknown.status_code == 404 and isinstance(raised(unknown), NotFoundError)


async def test_a_host_factory_hands_routes_their_host(key: OKPKey) -> None:
    seen: list[RemoteContext] = []

    def factory(remote: RemoteContext) -> Host:
        seen.append(remote)
        return object()  # type: ignore[return-value]

    async def jwks() -> Mapping[str, Any]:
        return jwks_of(key)

    app = create_app(EchoPlugin(), verifier=ContextVerifier("echo", jwks), host_factory=factory)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://echo") as client:
        response = await client.get("/whoami", headers=token(key))
    assert response.json()["has_host"] is True and seen[0].tenant is not None and seen[0].tenant.slug == "acme"


def test_a_plugin_without_manifest_or_with_a_foreign_verifier_is_refused() -> None:
    async def jwks() -> Mapping[str, Any]:
        return {"keys": []}

    with pytest.raises(PluginLoadError, match="plexica_manifest"):
        create_app(object(), host_url="http://host")
    with pytest.raises(PluginLoadError, match="notes"):
        create_app(EchoPlugin(), verifier=ContextVerifier("notes", jwks))
    with pytest.raises(ValueError, match="host_url"):
        create_app(EchoPlugin())
