"""Identity against a real Keycloak: realm provisioning, real tokens, the attack suite over HTTP.

Needs the Keycloak of ``scripts/services.sh up keycloak`` (``TEST_KEYCLOAK_URL``). Realms are
slow to create (1-3 s each), so one module-scoped world holds two tenants with realms, a platform
realm and test users; the lifecycle tests provision their own tenants. Every realm made here is
named with a per-run suffix and deleted at the end, so runs never collide on a long-lived Keycloak.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import attrs
import httpx2
import pytest
from click.testing import CliRunner
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette

from plexica import create_app, load_settings
from plexica.cli.main import cli
from plexica.identity.keycloak import AUDIENCE_SCOPE, AdminUser, IdentityAdminError, KeycloakAdmin
from plexica.identity.realm_plugin import PLUGIN_NAME, RealmPlugin
from plexica.platform import Platform
from plexica.settings import Settings
from plexica.tenancy.repository import TenantRepository
from plexica_sdk import PluginManifest, hookimpl
from plexica_sdk.errors import PluginCallError, TenantNotFoundError

pytestmark = [pytest.mark.anyio, pytest.mark.keycloak]

AUDIENCE = "plexica-api"
TEST_CLIENT = "plexica-tests"  # public, password grant: only tests get tokens this way
OTHER_API_CLIENT = "other-api-tests"  # like TEST_CLIENT, for another API's audience
PASSWORD = "Corr3ct-Horse-Battery"
FIRST_ADMIN_PASSWORD = "Temp-Passw0rd-1"
HOST_SUFFIX = "tenants.test"
SUFFIX = uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"  # module scope: the shared world's fixtures run on the tests' event loop


# --------------------------------------------------------------------------------- helpers


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segments(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = (base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)) for part in token.split("."))
    return json.loads(header), json.loads(payload)


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join([b64url(json.dumps(header).encode()), b64url(json.dumps(payload).encode()), b64url(signature)])


def assert_problem(response: httpx2.Response, status: int, *, token: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert "Traceback" not in response.text and 'File "' not in response.text
    if token is not None:
        assert token[:40] not in response.text
    return body


@attrs.define
class Keycloak:
    """The real Keycloak: its URL, an admin client, and token requests as a user would make them."""

    url: str
    admin_username: str
    admin_password: str
    admin: KeycloakAdmin
    http: httpx2.AsyncClient

    def keycloak_settings(self, **overrides: Any) -> dict[str, Any]:
        return {
            "url": self.url,
            "admin_username": self.admin_username,
            "admin_password": self.admin_password,
            "platform_realm": f"platform-{SUFFIX}",
            "first_admin_email": "admin@{slug}.example.com",
            "first_admin_password": FIRST_ADMIN_PASSWORD,
            "web_redirect_uris": ["https://{slug}.example.com/*"],
            **overrides,
        }

    async def password_grant(self, realm: str, username: str, client_id: str = TEST_CLIENT) -> httpx2.Response:
        return await self.http.post(
            f"{self.url}/realms/{realm}/protocol/openid-connect/token",
            data={"grant_type": "password", "client_id": client_id, "username": username, "password": PASSWORD},
        )

    async def token(self, realm: str, username: str, client_id: str = TEST_CLIENT) -> str:
        response = await self.password_grant(realm, username, client_id)
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    async def master_token(self) -> str:
        """A real token of the master realm (the admin's): a realm no tenant has."""
        response = await self.http.post(
            f"{self.url}/realms/master/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": self.admin_username,
                "password": self.admin_password,
            },
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    async def realm(self, realm: str) -> dict[str, Any] | None:
        response = await self.admin.call("GET", f"/{realm}")
        return response.json() if response.status_code == 200 else None

    async def add_test_login(self, slug: str, username: str, roles: tuple[str, ...] = ("member",)) -> None:
        """A password-grant client and a user with a permanent password in the tenant's realm."""
        await self.admin.ensure_client(
            slug,
            {
                "clientId": TEST_CLIENT,
                "publicClient": True,
                "directAccessGrantsEnabled": True,
                "standardFlowEnabled": False,
            },
        )
        user = AdminUser(username=username, email=f"{username}@{slug}.example.com", password=PASSWORD, temporary=False)
        await self.admin.ensure_user(slug, user, roles)

    async def add_client_without_the_api_audience(self, slug: str) -> None:
        """A password-grant client whose tokens are for another API: the realm's users, our issuer."""
        realm = f"tenant-{slug}"
        client_id, _ = await self.admin.ensure_client(
            slug, {"clientId": OTHER_API_CLIENT, "publicClient": True, "directAccessGrantsEnabled": True}
        )
        scopes = (await self.admin.call("GET", f"/{realm}/clients/{client_id}/default-client-scopes")).json()
        (audience,) = [scope for scope in scopes if scope["name"] == AUDIENCE_SCOPE]
        path = f"/{realm}/clients/{client_id}/default-client-scopes/{audience['id']}"
        assert (await self.admin.call("DELETE", path)).status_code == 204
        mapper = {
            "name": "other-audience",
            "protocol": "openid-connect",
            "protocolMapper": "oidc-audience-mapper",
            "config": {"included.custom.audience": "another-api", "access.token.claim": "true"},
        }
        path = f"/{realm}/clients/{client_id}/protocol-mappers/models"
        assert (await self.admin.call("POST", path, json=mapper)).status_code == 201


@pytest.fixture(scope="module")
async def keycloak(keycloak_url: str) -> AsyncIterator[Keycloak]:
    username = os.environ.get("TEST_KEYCLOAK_ADMIN", "admin")
    password = os.environ.get("TEST_KEYCLOAK_PASSWORD", "admin")
    settings = load_settings(
        environ={}, auth={"keycloak": {"url": keycloak_url, "admin_username": username, "admin_password": password}}
    )
    assert settings.auth.keycloak is not None
    async with (
        KeycloakAdmin(settings.auth.keycloak, audience=AUDIENCE) as admin,
        httpx2.AsyncClient(timeout=30) as http,
    ):
        yield Keycloak(keycloak_url, username, password, admin, http)


@attrs.define
class RunningHost:
    app: Starlette
    client: httpx2.AsyncClient

    @property
    def platform(self) -> Platform:
        return self.app.state.platform  # type: ignore[no-any-return]

    @staticmethod
    def auth(token: str, **headers: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", **headers}


@contextlib.asynccontextmanager
async def running_host(settings: Settings, plugins: tuple[object, ...] = ()) -> AsyncIterator[RunningHost]:
    app = create_app(settings, plugins=plugins)
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield RunningHost(app, client)


def host_settings(keycloak: Keycloak, data_dir: Path, **keycloak_overrides: Any) -> Settings:
    return load_settings(
        environ={},
        data_dir=str(data_dir),
        environment="test",  # X-Tenant-ID is honoured unsigned (development and test only)
        load_entry_points=False,
        auth={"audience": AUDIENCE, "leeway_seconds": 5, "keycloak": keycloak.keycloak_settings(**keycloak_overrides)},
        # Creating a realm takes seconds; a cold Keycloak can take more than the default 10.
        http={"tenant_host_suffix": HOST_SUFFIX, "plugin_timeout_seconds": 90, "access_log": False},
    )


async def registry_has(platform: Platform, slug: str) -> bool:
    async with platform.db.core_connection() as conn:
        try:
            await TenantRepository().get(conn, slug, include_deleted=True)
        except TenantNotFoundError:
            return False
    return True


@attrs.define
class SigningKey:
    """An RSA key imported into a realm: Keycloak publishes it, so tokens it signs carry a real
    ``kid`` and a valid signature. Keycloak keeps signing with its own (higher-priority) key."""

    key: RSAKey
    kid: str

    def sign(self, claims: dict[str, Any], *, kid: str | None = None) -> str:
        return jwt.encode({"alg": "RS256", "typ": "JWT", "kid": kid or self.kid}, claims, self.key)


async def import_signing_key(keycloak: Keycloak, realm: str) -> SigningKey:
    key = RSAKey.generate_key(2048)
    response = await keycloak.admin.call(
        "POST",
        f"/{realm}/components",
        json={
            "name": "test-forging-key",
            "providerId": "rsa",
            "providerType": "org.keycloak.keys.KeyProvider",
            "config": {
                "privateKey": [key.as_pem(private=True).decode()],
                "priority": ["1"],
                "active": ["true"],
                "enabled": ["true"],
                "algorithm": ["RS256"],
            },
        },
    )
    assert response.status_code == 201, response.text
    jwks = (await keycloak.http.get(f"{keycloak.url}/realms/{realm}/protocol/openid-connect/certs")).json()
    modulus = key.as_dict(private=False)["n"]
    kid = next(entry["kid"] for entry in jwks["keys"] if entry.get("n") == modulus)
    return SigningKey(key, kid)


# ----------------------------------------------------------------------------- the world


@attrs.define
class World:
    keycloak: Keycloak
    host: RunningHost
    acme: str
    globex: str
    platform_realm: str
    tokens: dict[str, str]
    signing_key: SigningKey

    def realm(self, slug: str) -> str:
        return f"tenant-{slug}"

    def issuer(self, realm: str) -> str:
        return f"{self.keycloak.url}/realms/{realm}"

    def claims(self, slug: str, **overrides: Any) -> dict[str, Any]:
        """Plausible access-token claims for a member of ``slug``."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer(self.realm(slug)),
            "aud": [AUDIENCE, "account"],
            "sub": str(uuid.uuid4()),
            "typ": "Bearer",
            "iat": now,
            "exp": now + 300,
            "preferred_username": "forged",
            "realm_access": {"roles": ["member", "tenant_admin"]},
        }
        claims.update(overrides)
        return claims


@pytest.fixture(scope="module")
async def world(keycloak: Keycloak, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    acme, globex = f"kca-{SUFFIX}", f"kcb-{SUFFIX}"
    platform_realm = f"platform-{SUFFIX}"
    settings = host_settings(keycloak, tmp_path_factory.mktemp("keycloak-world"))
    # The platform realm (super-admins) is an ordinary realm; a template of "{slug}" lets the
    # admin client address it by its full name.
    platform_admin = KeycloakAdmin(
        attrs.evolve(keycloak.admin.settings, realm_template="{slug}"), audience=AUDIENCE, http_client=keycloak.http
    )
    try:
        async with running_host(settings) as host:
            for slug in (acme, globex):
                await host.platform.tenants.provision(slug)
            await platform_admin.ensure_realm(platform_realm, None)
            await platform_admin.ensure_client(
                platform_realm, {"clientId": TEST_CLIENT, "publicClient": True, "directAccessGrantsEnabled": True}
            )
            await platform_admin.ensure_user(
                platform_realm,
                AdminUser(username="root", email="root@example.com", password=PASSWORD, temporary=False),
                ("super_admin",),
            )
            await platform_admin.ensure_user(  # a platform user holding a tenant role: no tenant admits them
                platform_realm,
                AdminUser(username="operator", email="operator@example.com", password=PASSWORD, temporary=False),
                ("tenant_admin",),
            )
            await keycloak.add_test_login(acme, "alice")
            await keycloak.add_test_login(acme, "mallory", ("member", "super_admin"))  # the realm's own role
            await keycloak.add_test_login(globex, "bob")
            await keycloak.add_client_without_the_api_audience(acme)
            tokens = {
                "alice": await keycloak.token(f"tenant-{acme}", "alice"),
                "mallory": await keycloak.token(f"tenant-{acme}", "mallory"),
                "bob": await keycloak.token(f"tenant-{globex}", "bob"),
                "root": await keycloak.token(platform_realm, "root"),
                "operator": await keycloak.token(platform_realm, "operator"),
                "alice-other-api": await keycloak.token(f"tenant-{acme}", "alice", client_id=OTHER_API_CLIENT),
                # admin-cli exists in every realm but never got the API audience scope
                "alice-admin-cli": await keycloak.token(f"tenant-{acme}", "alice", client_id="admin-cli"),
                "master": await keycloak.master_token(),
            }
            signing_key = await import_signing_key(keycloak, f"tenant-{acme}")
            yield World(keycloak, host, acme, globex, platform_realm, tokens, signing_key)
    finally:
        for slug in (acme, globex):
            await keycloak.admin.delete_realm(slug)
        await platform_admin.delete_realm(platform_realm)


# ------------------------------------------------------------------------ provisioning


async def test_provisioning_creates_the_schema_and_a_realm_from_the_template(world: World) -> None:
    platform, admin, slug = world.host.platform, world.keycloak.admin, world.acme
    assert await platform.db.schema_exists((await platform.tenants.get(slug)).schema)
    realm = f"tenant-{slug}"
    assert (await world.keycloak.realm(realm) or {}).get("enabled") is True

    for role in ("tenant_admin", "member"):
        assert (await admin.call("GET", f"/{realm}/roles/{role}")).status_code == 200
    (web,) = (await admin.call("GET", f"/{realm}/clients", params={"clientId": "plexica-web"})).json()
    assert web["publicClient"] is True and web["standardFlowEnabled"] is True
    assert web["directAccessGrantsEnabled"] is False and web["implicitFlowEnabled"] is False
    assert web["attributes"]["pkce.code.challenge.method"] == "S256"
    assert web["redirectUris"] == [f"https://{slug}.example.com/*"]
    assert "secret" not in web or not web.get("secret")

    (first,) = (await admin.call("GET", f"/{realm}/users", params={"username": "admin", "exact": "true"})).json()
    assert first["email"] == f"admin@{slug}.example.com"
    roles = (await admin.call("GET", f"/{realm}/users/{first['id']}/role-mappings/realm")).json()
    assert "tenant_admin" in {role["name"] for role in roles}
    # The temporary password works only to set a new one: no API token without that step.
    refused = await world.keycloak.http.post(
        f"{world.keycloak.url}/realms/{realm}/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": TEST_CLIENT,
            "username": "admin",
            "password": FIRST_ADMIN_PASSWORD,
        },
    )
    assert refused.status_code == 400 and "not fully set up" in refused.text


async def test_ensuring_an_existing_realm_changes_nothing(world: World) -> None:
    plugin = world.host.platform.plugins.get(PLUGIN_NAME)
    assert plugin is not None and isinstance(plugin.obj, RealmPlugin) and plugin.obj.admin is not None
    report = await plugin.obj.admin.ensure_realm(world.acme, AdminUser(username="admin", password="ignored"))
    assert not report.changed, report


async def test_a_real_token_of_a_tenant_realm_is_accepted_with_its_roles(world: World) -> None:
    response = await world.host.client.get("/api/core/v1/me", headers=world.host.auth(world.tokens["alice"]))
    assert response.status_code == 200, response.text
    me = response.json()
    assert me["tenant"] == world.acme and me["username"] == "alice"
    assert "member" in me["roles"] and me["is_super_admin"] is False
    _, claims = segments(world.tokens["alice"])
    assert AUDIENCE in claims["aud"]  # from the realm's audience scope


async def test_a_platform_realm_super_admin_may_use_platform_routes(world: World) -> None:
    response = await world.host.client.get("/api/core/v1/tenants", headers=world.host.auth(world.tokens["root"]))
    assert response.status_code == 200, response.text
    assert {world.acme, world.globex} <= {item["slug"] for item in response.json()["items"]}


async def test_a_platform_super_admin_is_admitted_to_a_tenant_without_tenant_power(world: World) -> None:
    headers = world.host.auth(world.tokens["root"], **{"X-Tenant-ID": world.acme})
    me = await world.host.client.get("/api/core/v1/me", headers=headers)
    assert me.status_code == 200, me.text
    assert (me.json()["tenant"], me.json()["is_super_admin"], me.json()["roles"]) == (world.acme, True, [])
    assert_problem(await world.host.client.get("/api/core/v1/roles", headers=headers), 403)


# --------------------------------------------------------------------------- attacks


def _alg_none(w: World) -> tuple[str, dict[str, str]]:
    header, claims = segments(w.tokens["alice"])
    return unsigned({**header, "alg": "none"}, claims), {}


def _alg_none_with_signature(w: World) -> tuple[str, dict[str, str]]:
    header, claims = segments(w.tokens["alice"])
    return unsigned({**header, "alg": "none"}, claims, b"\0"), {}


def _hs256_with_the_realm_public_key(w: World) -> tuple[str, dict[str, str]]:
    # The classic confusion: the realm's public key (anyone can download it) as an HMAC secret.
    header = {"alg": "HS256", "typ": "JWT", "kid": w.signing_key.kid}
    public_pem = w.signing_key.key.as_pem(private=False)
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(w.claims(w.acme)).encode())}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}", {}


def _expired(w: World) -> tuple[str, dict[str, str]]:
    now = int(time.time())
    return w.signing_key.sign(w.claims(w.acme, iat=now - 7200, exp=now - 3600)), {}


def _not_yet_valid(w: World) -> tuple[str, dict[str, str]]:
    return w.signing_key.sign(w.claims(w.acme, nbf=int(time.time()) + 3600)), {}


def _issuer_of_another_server(w: World) -> tuple[str, dict[str, str]]:
    return w.signing_key.sign(w.claims(w.acme, iss=f"http://idp.invalid/realms/tenant-{w.acme}")), {}


def _issuer_of_another_realm(w: World) -> tuple[str, dict[str, str]]:
    # Validly signed by tenant A's key, claiming tenant B's realm: keys are looked up per issuer.
    return w.signing_key.sign(w.claims(w.globex)), {}


def _master_realm_token(w: World) -> tuple[str, dict[str, str]]:
    return w.tokens["master"], {}


def _wrong_audience(w: World) -> tuple[str, dict[str, str]]:
    return w.tokens["alice-other-api"], {}


def _admin_cli(w: World) -> tuple[str, dict[str, str]]:
    return w.tokens["alice-admin-cli"], {}


def _forged_audience(w: World) -> tuple[str, dict[str, str]]:
    return w.signing_key.sign(w.claims(w.acme, aud="another-api")), {}


def _tampered_payload(w: World) -> tuple[str, dict[str, str]]:
    header, payload, signature = w.tokens["alice"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["realm_access"] = {"roles": ["tenant_admin"]}
    return f"{header}.{b64url(json.dumps(claims).encode())}.{signature}", {}


def _unknown_kid(w: World) -> tuple[str, dict[str, str]]:
    return w.signing_key.sign(w.claims(w.acme), kid="no-such-key"), {}


def _huge_token(w: World) -> tuple[str, dict[str, str]]:
    return "a" * 65536, {}


def _broken_base64(w: World) -> tuple[str, dict[str, str]]:
    header, payload, signature = w.tokens["alice"].split(".")
    return f"{header}.{payload[:10]}!*{payload[12:]}.{signature}", {}


def _tenant_a_token_on_tenant_b_by_header(w: World) -> tuple[str, dict[str, str]]:
    return w.tokens["alice"], {"X-Tenant-ID": w.globex}


def _tenant_a_token_on_tenant_b_by_host(w: World) -> tuple[str, dict[str, str]]:
    return w.tokens["alice"], {"Host": f"{w.globex}.{HOST_SUFFIX}"}


ME, TENANTS, ROLES = "/api/core/v1/me", "/api/core/v1/tenants", "/api/core/v1/roles"
NOT_FOUND, FORBIDDEN = "the resource does not exist", "you are not allowed to do this"
ATTACKS: list[tuple[str, Callable[[World], tuple[str, dict[str, str]]], str, int, str]] = [
    ("alg-none", _alg_none, ME, 401, "malformed token"),
    ("alg-none-with-signature", _alg_none_with_signature, ME, 401, "signing algorithm not allowed"),
    ("hs256-signed-with-realm-public-key", _hs256_with_the_realm_public_key, ME, 401, "signing algorithm not allowed"),
    ("expired", _expired, ME, 401, "token expired"),
    ("nbf-in-the-future", _not_yet_valid, ME, 401, "token is not valid yet"),
    ("issuer-of-another-server", _issuer_of_another_server, ME, 401, "unknown issuer"),
    ("issuer-of-another-realm", _issuer_of_another_realm, ME, 401, "unknown signing key"),
    ("real-token-of-the-master-realm", _master_realm_token, ME, 401, "unknown issuer"),
    ("real-token-for-another-audience", _wrong_audience, ME, 401, "token is not for this audience"),
    ("real-token-of-admin-cli", _admin_cli, ME, 401, "token lacks claims: aud,sub"),
    ("forged-audience", _forged_audience, ME, 401, "token is not for this audience"),
    ("tampered-payload", _tampered_payload, ME, 401, "invalid signature"),
    ("unknown-kid", _unknown_kid, ME, 401, "unknown signing key"),
    ("64kb-token", _huge_token, ME, 401, "token too large"),
    ("broken-base64", _broken_base64, ME, 401, "malformed token"),
    ("tenant-a-token-on-tenant-b-by-header", _tenant_a_token_on_tenant_b_by_header, ME, 404, NOT_FOUND),
    ("tenant-a-token-on-tenant-b-by-host", _tenant_a_token_on_tenant_b_by_host, ME, 404, NOT_FOUND),
    ("tenant-realm-super-admin-on-platform-route", lambda w: (w.tokens["mallory"], {}), TENANTS, 403, FORBIDDEN),
    (
        "platform-tenant-admin-on-a-tenant-by-header",
        lambda w: (w.tokens["operator"], {"X-Tenant-ID": w.acme}),
        ROLES,
        404,
        NOT_FOUND,
    ),
    (
        "platform-tenant-admin-on-a-tenant-by-host",
        lambda w: (w.tokens["operator"], {"Host": f"{w.acme}.{HOST_SUFFIX}"}),
        ROLES,
        404,
        NOT_FOUND,
    ),
]


@pytest.mark.parametrize(("make", "path", "status", "detail"), [a[1:] for a in ATTACKS], ids=[a[0] for a in ATTACKS])
async def test_attack_is_refused_with_a_problem_and_no_trace(
    world: World, make: Callable[[World], tuple[str, dict[str, str]]], path: str, status: int, detail: str
) -> None:
    token, headers = make(world)
    response = await world.host.client.get(path, headers=world.host.auth(token, **headers))
    body = assert_problem(response, status, token=token)
    assert body.get("detail") == detail
    if status == 404:
        assert world.acme not in json.dumps(body) and world.globex not in json.dumps(body)


async def test_a_made_up_tenant_realm_costs_keycloak_no_request(world: World) -> None:
    seen: list[str] = []

    async def record(request: httpx2.Request) -> None:
        seen.append(request.url.path)

    client = world.host.platform.http_client
    client.event_hooks["request"].append(record)
    try:
        for n in range(3):
            token = world.signing_key.sign(world.claims(f"nosuch{n}-{SUFFIX}"))
            response = await world.host.client.get("/api/core/v1/me", headers=world.host.auth(token))
            assert_problem(response, 401, token=token)
    finally:
        client.event_hooks["request"].remove(record)
    assert not [path for path in seen if "nosuch" in path]


# -------------------------------------------------------------------------- lifecycle


async def test_suspension_denies_at_once_disables_the_realm_and_deletion_removes_it(
    world: World, keycloak: Keycloak
) -> None:
    host, root = world.host, world.host.auth(world.tokens["root"])
    slug = f"kcc-{SUFFIX}"
    realm = f"tenant-{slug}"
    try:
        created = await host.client.post("/api/core/v1/tenants", json={"slug": slug}, headers=root)
        assert created.status_code == 201, created.text
        await keycloak.add_test_login(slug, "carol")
        token = await keycloak.token(realm, "carol")
        me = host.auth(token)
        assert (await host.client.get("/api/core/v1/me", headers=me)).status_code == 200

        assert (await host.client.post(f"/api/core/v1/tenants/{slug}/suspend", headers=root)).status_code == 200
        assert_problem(await host.client.get("/api/core/v1/me", headers=me), 403, token=token)
        assert (await keycloak.realm(realm) or {}).get("enabled") is False
        assert (await keycloak.password_grant(realm, "carol")).status_code != 200  # no new tokens either

        assert (await host.client.post(f"/api/core/v1/tenants/{slug}/resume", headers=root)).status_code == 200
        assert (await keycloak.realm(realm) or {}).get("enabled") is True
        assert (await host.client.get("/api/core/v1/me", headers=me)).status_code == 200

        assert (await host.client.delete(f"/api/core/v1/tenants/{slug}", headers=root)).status_code == 204
        assert await keycloak.realm(realm) is None
        # Cached keys or claims answer 404 (unknown tenant); without them Keycloak's missing
        # realm answers 401 (unknown issuer). Either way nothing about the tenant is served.
        assert (await host.client.get("/api/core/v1/me", headers=me)).status_code in (401, 404)
    finally:
        await keycloak.admin.delete_realm(slug)


async def test_a_failure_at_the_realm_step_leaves_no_realm_schema_or_registry_row(
    keycloak: Keycloak, tmp_path: Path
) -> None:
    # Keycloak itself refuses the first admin's address after the realm exists: a real failure
    # half-way through the realm step.
    settings = host_settings(keycloak, tmp_path, first_admin_email="not an email")
    slug = f"kcd-{SUFFIX}"
    try:
        async with running_host(settings) as host:
            with pytest.raises(IdentityAdminError, match="create user"):
                await host.platform.tenants.provision(slug)
            assert not await keycloak.admin.realm_exists(slug)
            assert not await host.platform.db.schema_exists(f"tenant_{slug.replace('-', '_')}")
            assert not await registry_has(host.platform, slug)
    finally:
        await keycloak.admin.delete_realm(slug)


class FailingAfterwardsPlugin:
    """Fails provisioning in its own hook, after (or regardless of) the realm being created."""

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(name="fails-provisioning", version="1.0.0")

    @hookimpl
    async def plexica_tenant_provisioned(self) -> None:
        raise RuntimeError("this plugin cannot set the tenant up")


async def test_another_plugins_failed_provisioning_hook_leaves_no_realm(keycloak: Keycloak, tmp_path: Path) -> None:
    slug = f"kce-{SUFFIX}"
    try:
        async with running_host(host_settings(keycloak, tmp_path), plugins=(FailingAfterwardsPlugin(),)) as host:
            with pytest.raises(PluginCallError):
                await host.platform.tenants.provision(slug)
            assert not await registry_has(host.platform, slug)
            assert not await keycloak.admin.realm_exists(slug)
    finally:
        await keycloak.admin.delete_realm(slug)


# -------------------------------------------------------------------------- reconcile


def run_cli(args: list[str], settings_file: Path) -> Any:
    result = CliRunner().invoke(cli, ["--settings", str(settings_file), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def settings_file(world: World, keycloak: Keycloak, tmp_path: Path) -> Path:
    settings = world.host.platform.settings
    keycloak_settings = keycloak.keycloak_settings()
    lines = [
        f'data_dir = "{settings.data_dir}"',
        'environment = "test"',
        "load_entry_points = false",
        "[auth.keycloak]",
        *(f"{key} = {json.dumps(value)}" for key, value in keycloak_settings.items()),
    ]
    path = tmp_path / "plexica.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_realms_reconcile_repairs_drift_and_prunes_orphans(
    world: World, keycloak: Keycloak, settings_file: Path
) -> None:
    admin, realm = keycloak.admin, f"tenant-{world.globex}"
    (web,) = (await admin.call("GET", f"/{realm}/clients", params={"clientId": "plexica-web"})).json()
    drift = {"directAccessGrantsEnabled": True, "attributes": {"pkce.code.challenge.method": ""}}
    assert (await admin.call("PUT", f"/{realm}/clients/{web['id']}", json=drift)).status_code == 204
    assert (await admin.call("DELETE", f"/{realm}/roles/member")).status_code == 204
    orphan = f"kco-{SUFFIX}"
    await admin.ensure_realm(orphan, None)  # a realm without a tenant, e.g. left by a crash
    try:
        outcomes = await anyio.to_thread.run_sync(run_cli, ["realms", "reconcile", "--prune", "--json"], settings_file)
        by_tenant = {outcome["tenant"]: outcome for outcome in outcomes}
        assert by_tenant[world.acme]["result"] == "unchanged"
        assert by_tenant[world.globex]["result"] == "updated"
        assert any("member" in change for change in by_tenant[world.globex]["changes"])
        assert by_tenant[orphan]["result"] == "deleted"
        assert not await admin.realm_exists(orphan)

        (web,) = (await admin.call("GET", f"/{realm}/clients", params={"clientId": "plexica-web"})).json()
        assert web["directAccessGrantsEnabled"] is False
        assert web["attributes"]["pkce.code.challenge.method"] == "S256"
        again = await anyio.to_thread.run_sync(run_cli, ["realms", "reconcile", "--json"], settings_file)
        assert {outcome["result"] for outcome in again} == {"unchanged"}
    finally:
        await admin.delete_realm(orphan)
