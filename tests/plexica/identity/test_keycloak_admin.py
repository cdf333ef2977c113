"""KeycloakAdmin against the real Keycloak (marker ``keycloak``), and its errors without one."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator

import attrs
import httpx2
import pytest

from plexica.identity.keycloak import AdminUser, IdentityAdminError, KeycloakAdmin
from plexica.settings import KeycloakSettings
from plexica_sdk.errors import BackendUnavailableError

pytestmark = pytest.mark.anyio

AUDIENCE = "plexica-api"


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_admin_credentials_are_required() -> None:
    with pytest.raises(ValueError, match="admin credentials"):
        KeycloakAdmin(KeycloakSettings(url="http://kc.test", admin_username="admin"), audience=AUDIENCE)


def test_realm_names_follow_the_template() -> None:
    settings = KeycloakSettings(
        url="http://kc.test", admin_username="a", admin_password="b", realm_template="t-{slug}-x"
    )
    admin = KeycloakAdmin(settings, audience=AUDIENCE)
    assert admin.realm_name("acme") == "t-acme-x"
    assert admin.tenant_of_realm("t-acme-x") == "acme"
    assert admin.tenant_of_realm("master") is None and admin.tenant_of_realm("t-Acme-x") is None


async def test_an_unreachable_keycloak_is_a_backend_error_without_secrets() -> None:
    settings = KeycloakSettings(
        url=f"http://127.0.0.1:{unused_port()}", admin_username="admin", admin_password="hunter2-secret"
    )
    async with KeycloakAdmin(settings, audience=AUDIENCE, retry_delays=(0.01,)) as admin:
        with pytest.raises(BackendUnavailableError) as failure:
            await admin.realm_exists("acme")
    assert failure.value.backend == "identity"
    assert "hunter2" not in str(failure.value)


# --------------------------------------------------------------------- real Keycloak


@pytest.fixture
async def admin(keycloak_url: str) -> AsyncIterator[KeycloakAdmin]:
    settings = KeycloakSettings(
        url=keycloak_url,
        admin_username=os.environ.get("TEST_KEYCLOAK_ADMIN", "admin"),
        admin_password=os.environ.get("TEST_KEYCLOAK_PASSWORD", "admin"),
    )
    async with KeycloakAdmin(settings, audience=AUDIENCE) as kc:
        yield kc


async def test_wrong_admin_credentials_are_refused_clearly(admin: KeycloakAdmin) -> None:
    wrong = attrs.evolve(admin.settings, admin_password="not-the-password")
    async with KeycloakAdmin(wrong, audience=AUDIENCE) as refused:
        with pytest.raises(IdentityAdminError, match="refused the admin credentials") as failure:
            await refused.realm_exists("acme")
    assert failure.value.status == 401 and "not-the-password" not in str(failure.value)


async def test_missing_realms_are_reported_not_raised(admin: KeycloakAdmin) -> None:
    slug = f"missing-{uuid.uuid4().hex[:8]}"
    assert not await admin.realm_exists(slug)
    assert await admin.delete_realm(slug) is False
    with pytest.raises(IdentityAdminError, match="does not exist"):
        await admin.set_realm_enabled(slug, False)


async def test_the_admin_token_is_reused_until_it_expires(keycloak_url: str, admin: KeycloakAdmin) -> None:
    now = [0.0]
    logins: list[str] = []

    async def count(request: httpx2.Request) -> None:
        if request.url.path.endswith("/token"):
            logins.append(request.url.path)

    async with httpx2.AsyncClient(event_hooks={"request": [count]}) as http:
        timed = KeycloakAdmin(admin.settings, audience=AUDIENCE, http_client=http, clock=lambda: now[0])
        for _ in range(3):
            await timed.realm_exists("master-of-nothing")
        assert len(logins) == 1
        now[0] += 3600  # past the token's lifetime
        await timed.realm_exists("master-of-nothing")
        assert len(logins) == 2
        await timed.aclose()  # a caller's client stays open
        assert not http.is_closed


async def test_concurrent_ensures_of_one_realm_both_succeed_and_converge(admin: KeycloakAdmin) -> None:
    slug = f"race-{uuid.uuid4().hex[:8]}"
    try:
        user = AdminUser(username="admin", email=f"admin@{slug}.example.com", password="Temp-1")
        first, second = await asyncio.gather(admin.ensure_realm(slug, user), admin.ensure_realm(slug, user))
        assert [first.created, second.created].count(True) <= 1
        assert await admin.realm_exists(slug)
        again = await admin.ensure_realm(slug, user)
        assert not again.changed, again
        assert await admin.set_realm_enabled(slug, False) is True
        assert await admin.set_realm_enabled(slug, False) is False
        # ensure_realm (provisioning) enables; reconcile leaves `enabled` to the tenant's status
        assert not (await admin.reconcile_realm(slug)).changed
        assert (await admin.ensure_realm(slug, None)).changes == ("realm.enabled",)
    finally:
        await admin.delete_realm(slug)
    assert not await admin.realm_exists(slug)


def scripted_keycloak(admin_answers: list[int]) -> tuple[httpx2.AsyncClient, list[str]]:
    """A Keycloak stand-in: logins always succeed, admin calls answer ``admin_answers`` in turn."""
    seen: list[str] = []

    def handle(request: httpx2.Request) -> httpx2.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.url.path.endswith("/token"):
            return httpx2.Response(200, json={"access_token": f"t{len(seen)}", "expires_in": 60})
        return httpx2.Response(admin_answers.pop(0), json={"realm": "tenant-acme", "enabled": True})

    return httpx2.AsyncClient(transport=httpx2.MockTransport(handle)), seen


async def test_transient_server_errors_are_retried() -> None:
    http, seen = scripted_keycloak([503, 500, 200])
    settings = KeycloakSettings(url="http://kc.test", admin_username="a", admin_password="b")
    async with http, KeycloakAdmin(settings, audience=AUDIENCE, http_client=http, retry_delays=(0, 0)) as admin:
        assert await admin.realm_exists("acme")
    assert seen.count("GET /admin/realms/tenant-acme") == 3


async def test_persistent_server_errors_become_backend_errors() -> None:
    http, _ = scripted_keycloak([503, 503])
    settings = KeycloakSettings(url="http://kc.test", admin_username="a", admin_password="b")
    async with http, KeycloakAdmin(settings, audience=AUDIENCE, http_client=http, retry_delays=(0,)) as admin:
        with pytest.raises(BackendUnavailableError, match="answered 503"):
            await admin.realm_exists("acme")


async def test_a_rejected_admin_token_is_renewed_once() -> None:
    http, seen = scripted_keycloak([401, 200])
    settings = KeycloakSettings(url="http://kc.test", admin_username="a", admin_password="b")
    async with http, KeycloakAdmin(settings, audience=AUDIENCE, http_client=http, retry_delays=()) as admin:
        assert await admin.realm_exists("acme")
    assert [path.endswith("/token") for path in seen] == [True, False, True, False]
