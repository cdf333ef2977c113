"""Admission to a tenant over HTTP: only the tenant's own issuer, or a listed super-admin without roles.

Every way a request can address a tenant (host name, ``/t/{slug}`` prefix, unsigned
``X-Tenant-ID`` in development, a gateway-signed ``X-Tenant-ID`` in token mode, and a gateway
mode caller addressing by path or host) is tried with a platform principal, in both identity
strategies (realm per tenant, and Keycloak Organizations, both signed by the dev issuer):

- a platform principal that is not a listed super-admin gets 404, as for a tenant that does not
  exist, whatever roles it carries and whatever its ``sub`` (``alice`` inherits nothing of
  ``acme``'s ``alice``);
- a listed super-admin is admitted, but no token role and no tenant user's grant counts: 403 on
  everything a permission guards;
- the tenant's own users are served as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import attrs
import httpx2
import pytest

from plexica.auth import GatewaySigner
from plexica.auth.issuers import OrganizationsStrategy
from plexica.tenancy.service import tenant_context_of
from plexica_sdk.types import Principal
from tests.e2e.conftest import Host

pytestmark = pytest.mark.anyio

MakeHost = Callable[..., AbstractAsyncContextManager[Host]]
KEY = "admission-gateway-key"
NOTES = "/api/plugins/notes/notes"
ROLES = "/api/core/v1/roles"
ME = "/api/core/v1/me"
PLATFORM_REALM = "plexica-platform"
ORGS_REALM = "plexica-orgs"


@attrs.frozen
class Addressing:
    """One way of naming the tenant, with the host settings it needs."""

    name: str
    settings: dict[str, Any]
    gateway_mode: bool = False
    organizations: bool = False

    def address(self, path: str, slug: str) -> tuple[str, dict[str, str]]:
        """The path to send and the headers that name ``slug``."""
        if self.name.endswith("host"):
            return path, {"Host": f"{slug}.plexica.test"}
        if self.name.endswith("path"):
            return f"/t/{slug}{path}", {}
        if self.name == "gateway-signed-header":
            return path, {}  # the signature below carries X-Tenant-ID
        return path, {"X-Tenant-ID": slug}


HOST = {"tenant_resolvers": ["token", "host"], "tenant_host_suffix": "plexica.test"}
PATH = {"tenant_resolvers": ["token", "path"]}
GATEWAY = {"mode": "gateway", "gateway_key": KEY}
WAYS = [
    Addressing("host", {"http": HOST}),
    Addressing("path", {"http": PATH}),
    Addressing("unsigned-header", {}),
    Addressing("gateway-signed-header", {"auth": {"gateway_key": KEY}}),
    Addressing("gateway-mode-path", {"auth": GATEWAY, "http": PATH}, gateway_mode=True),
    Addressing("gateway-mode-host", {"auth": GATEWAY, "http": HOST}, gateway_mode=True),
    Addressing("organizations-header", {}, organizations=True),
    Addressing("organizations-host", {"http": HOST}, organizations=True),
]


@attrs.define
class Caller:
    """Sends requests to ``acme`` as a platform principal or as one of acme's users."""

    host: Host
    way: Addressing

    def credential(self, method: str, path: str, *, user: str, roles: list[str], tenant: str | None) -> dict[str, str]:
        if self.way.gateway_mode:
            return GatewaySigner(KEY).headers(method, path, tenant=tenant, user=user, roles=roles)
        issuer = self.host.platform.dev_issuer
        assert issuer is not None
        if tenant is None:
            token = issuer.mint(realm=PLATFORM_REALM, subject=user, username=user, roles=roles)
        elif self.way.organizations:
            extra = {"organization": [tenant]}
            token = issuer.mint(realm=ORGS_REALM, subject=user, username=user, roles=roles, extra_claims=extra)
        else:
            token = issuer.mint(realm=f"tenant-{tenant}", subject=user, username=user, roles=roles)
        headers = {"Authorization": f"Bearer {token}"}
        if self.way.name == "gateway-signed-header":  # token mode: the signature only vouches for X-Tenant-ID
            headers |= GatewaySigner(KEY).headers(method, path, tenant="acme", user=user, roles=roles)
        return headers

    async def send(
        self, method: str, path: str, *, user: str, roles: list[str], tenant: str | None = None, **kwargs: Any
    ) -> httpx2.Response:
        sent, addressed = self.way.address(path, "acme")
        headers = {**addressed, **self.credential(method, sent, user=user, roles=roles, tenant=tenant)}
        return await self.host.client.request(method, sent, headers=headers, **kwargs)


def assert_problem(response: httpx2.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.fixture(params=WAYS, ids=[way.name for way in WAYS])
async def caller(request: pytest.FixtureRequest, make_host: MakeHost) -> AsyncIterator[Caller]:
    way: Addressing = request.param
    async with make_host(**way.settings) as host:
        if way.organizations:
            verifier = host.platform.verifier
            verifier.strategy = OrganizationsStrategy(
                host.platform.settings.auth.dev_issuer_url, ORGS_REALM, platform_realm=PLATFORM_REALM
            )
        for slug in ("acme", "globex"):
            await host.platform.tenants.provision(slug)
        # acme's own alice is a tenant admin by a grant in acme's database, not by her token.
        acme = tenant_context_of(await host.platform.tenants.get("acme"))
        await host.platform.permission_service.grant(acme, "tenant_admin", user_id="alice", granted_by="test")
        yield Caller(host, way)


async def test_a_platform_token_with_tenant_roles_is_not_admitted(caller: Caller) -> None:
    mallory: dict[str, Any] = {"user": "mallory", "roles": ["tenant_admin", "member"]}
    assert_problem(await caller.send("GET", NOTES, **mallory), 404)
    assert_problem(await caller.send("POST", ROLES, json={"name": "backdoor", "permissions": []}, **mallory), 404)
    assert_problem(await caller.send("GET", ME, **mallory), 404)


async def test_a_platform_sub_inherits_nothing_of_the_tenant_user_of_that_name(caller: Caller) -> None:
    own = await caller.send(
        "POST", ROLES, user="alice", roles=[], tenant="acme", json={"name": "ok", "permissions": []}
    )
    assert own.status_code == 201, own.text  # acme's alice, by her grant
    platform_alice: dict[str, Any] = {"user": "alice", "roles": []}
    assert_problem(await caller.send("GET", NOTES, **platform_alice), 404)
    assert_problem(await caller.send("POST", ROLES, json={"name": "again", "permissions": []}, **platform_alice), 404)


async def test_a_listed_super_admin_is_admitted_without_any_tenant_power(caller: Caller) -> None:
    admins = caller.host.platform.super_admins
    await admins.grant("root", granted_by=Principal(id="root", is_super_admin=True))
    await admins.grant("alice", granted_by=Principal(id="root", is_super_admin=True))
    for user in ("root", "alice"):  # alice: a super-admin named like a tenant user gets none of her grants
        admin: dict[str, Any] = {"user": user, "roles": ["super_admin", "tenant_admin", "member"]}
        me = await caller.send("GET", ME, **admin)
        assert me.status_code == 200, me.text
        assert (me.json()["tenant"], me.json()["is_super_admin"], me.json()["roles"]) == ("acme", True, [])
        assert_problem(await caller.send("GET", NOTES, **admin), 403)
        assert_problem(await caller.send("POST", ROLES, json={"name": f"by-{user}", "permissions": []}, **admin), 403)
    # The super_admin role without a place on the list: not admitted at all.
    assert_problem(await caller.send("GET", NOTES, user="eve", roles=["super_admin", "tenant_admin"]), 404)


async def test_the_tenants_own_users_are_served(caller: Caller) -> None:
    listed = await caller.send("GET", NOTES, user="bob", roles=["member"], tenant="acme")
    assert listed.status_code == 200, listed.text
    me = (await caller.send("GET", ME, user="bob", roles=["member"], tenant="acme")).json()
    assert (me["tenant"], me["roles"]) == ("acme", ["member"])
