"""Gateway mode end to end: a host behind a gateway that signs identity headers (docs/gateway.md)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx2
import pytest

from plexica import load_settings
from plexica.auth import GatewaySigner
from plexica_sdk.errors import SettingsError
from tests.e2e.conftest import Host

pytestmark = pytest.mark.anyio

MakeHost = Callable[..., AbstractAsyncContextManager[Host]]
KEY = "gateway-e2e-secret"
NOTES = "/api/plugins/notes/notes"
ME = "/api/core/v1/me"


def signed(
    method: str, path: str, *, tenant: str | None = "acme", user: str = "alice", roles: tuple[str, ...] = ("member",)
) -> dict[str, str]:
    return GatewaySigner(KEY).headers(method, path, tenant=tenant, user=user, roles=roles)


def assert_problem(response: httpx2.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


@pytest.fixture
async def gateway_host(make_host: MakeHost) -> AsyncIterator[Host]:
    async with make_host(
        auth={"mode": "gateway", "gateway_key": KEY}, http={"tenant_resolvers": ["token", "path"]}
    ) as host:
        for slug in ("acme", "globex"):
            await host.platform.tenants.provision(slug)
        yield host


async def test_the_signed_user_and_roles_are_the_caller(gateway_host: Host) -> None:
    response = await gateway_host.client.get(ME, headers=signed("GET", ME, roles=("member", "notes-editor")))

    assert response.status_code == 200, response.text
    assert response.json()["id"] == "alice"
    assert response.json()["roles"] == ["member", "notes-editor"]


async def test_signed_roles_drive_permissions_without_any_bearer_token(gateway_host: Host) -> None:
    client = gateway_host.client
    editor = signed("POST", NOTES, roles=("member", "notes-editor"))
    created = await client.post(NOTES, json={"title": "via gateway"}, headers=editor)
    assert created.status_code == 201, created.text

    assert_problem(await client.post(NOTES, json={"title": "x"}, headers=signed("POST", NOTES, user="bob")), 403)
    listed = await client.get(NOTES, headers=signed("GET", NOTES, user="bob"))
    assert "via gateway" in [item["title"] for item in listed.json()["items"]]


async def test_a_disabled_user_is_refused_although_the_gateway_vouches_for_them(gateway_host: Host) -> None:
    client = gateway_host.client
    assert (await client.get(NOTES, headers=signed("GET", NOTES, user="bob"))).status_code == 200  # admitted
    disable = "/api/core/v1/users/bob/disable"
    admin = signed("POST", disable, user="carol", roles=("tenant_admin",))
    assert (await client.post(disable, headers=admin)).status_code == 200

    assert_problem(await client.get(NOTES, headers=signed("GET", NOTES, user="bob")), 403)


@pytest.mark.parametrize(
    "headers",
    [
        lambda host: {},
        lambda host: host.auth(host.token("acme")),
        lambda host: {"X-Tenant-ID": "acme", "X-User-ID": "alice"},
    ],
    ids=["nothing", "valid-bearer-token", "unsigned-identity-headers"],
)
async def test_anything_not_signed_by_the_gateway_is_401(
    gateway_host: Host, headers: Callable[[Host], dict[str, str]]
) -> None:
    for path in (NOTES, ME, "/api/core/v1/tenants"):
        assert_problem(await gateway_host.client.get(path, headers=headers(gateway_host)), 401)


async def test_a_replayed_signature_is_refused_within_its_window(gateway_host: Host) -> None:
    headers = signed("GET", NOTES)

    assert (await gateway_host.client.get(NOTES, headers=headers)).status_code == 200
    body = assert_problem(await gateway_host.client.get(NOTES, headers=headers), 401)
    assert "signature" in json.dumps(body)


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", NOTES), ("GET", ME), ("GET", NOTES + "?limit=1")],
    ids=["other-method", "other-path", "added-query"],
)
async def test_a_signature_is_bound_to_its_method_path_and_query(gateway_host: Host, method: str, path: str) -> None:
    headers = signed("GET", NOTES, roles=("member", "notes-editor"))

    assert_problem(await gateway_host.client.request(method, path, headers=headers, json={"title": "x"}), 401)


async def test_a_signed_tenant_cannot_address_another_tenant(gateway_host: Host) -> None:
    path = "/t/globex" + NOTES
    body = assert_problem(await gateway_host.client.get(path, headers=signed("GET", path)), 404)
    assert "acme" not in json.dumps(body)

    own = "/t/acme" + NOTES
    assert (await gateway_host.client.get(own, headers=signed("GET", own))).status_code == 200


async def test_the_probes_need_no_signature(gateway_host: Host) -> None:
    assert (await gateway_host.client.get("/health")).status_code == 200


async def test_a_platform_caller_with_the_super_admin_role_is_a_super_admin(gateway_host: Host) -> None:
    path = "/api/core/v1/tenants"
    response = await gateway_host.client.get(
        path, headers=signed("GET", path, tenant=None, user="root", roles=("super_admin",))
    )

    assert response.status_code == 200, response.text
    assert {tenant["slug"] for tenant in response.json()["items"]} >= {"acme", "globex"}


@pytest.mark.redis
async def test_two_hosts_sharing_redis_refuse_each_others_replays(make_host: MakeHost, redis_url: str) -> None:
    overrides: dict[str, Any] = {"auth": {"mode": "gateway", "gateway_key": KEY}, "cache": {"redis_url": redis_url}}
    async with make_host(**overrides) as first, make_host(**overrides) as second:
        await first.platform.tenants.provision("acme")
        headers = signed("GET", NOTES)
        assert (await first.client.get(NOTES, headers=headers)).status_code == 200
        assert_problem(await second.client.get(NOTES, headers=headers), 401)


@pytest.mark.parametrize("environment", ["production", "development"])
def test_gateway_mode_without_a_key_refuses_to_start_in_one_line(environment: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        load_settings(environ={"PLEXICA_AUTH__MODE": "gateway", "PLEXICA_ENVIRONMENT": environment})

    assert excinfo.value.problems == ["'auth.mode' = 'gateway' must come with an 'auth.gateway_key' @ settings.auth"]
    assert "\n" not in str(excinfo.value)
