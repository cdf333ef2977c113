"""The host callback API over real HTTP: who may call back, and for which tenant.

A host on loopback; each test plays a remote plugin process sending raw requests, so every refusal
is seen as the plugin would see it: a 401 or 403 problem naming the SDK error class.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx2
import pytest

from plexica_sdk.remote import CONTEXT_HEADER
from plexica_sdk.remote.host_api import CREDENTIAL_HEADER, PLUGIN_HEADER, TENANT_HEADER
from tests.remote.callback_support import ServedHost, anyio_backend, served
from tests.sdk.remote.tokens import new_key

__all__ = ["anyio_backend", "served"]

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(anyio_backend: str) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=10.0) as http:
        yield http


async def _config(client: httpx2.AsyncClient, served: ServedHost, headers: dict[str, str]) -> httpx2.Response:
    return await client.get(served.callbacks + "/config", headers=headers)


def _refused(response: httpx2.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["error"] == error
    assert body["type"].startswith("https://plexica.dev/problems/")


async def test_the_context_token_of_a_call_authenticates_several_callbacks(
    served: ServedHost, client: httpx2.AsyncClient
) -> None:
    headers = {PLUGIN_HEADER: "probe", CONTEXT_HEADER: served.token("acme")}
    for _ in range(3):  # reused within its lifetime: the host's callback API is not a replay guard
        response = await _config(client, served, headers)
        assert response.status_code == 200, response.text
        assert response.json() == {"config": {"greeting": "hi"}}


async def test_callbacks_without_credentials_are_refused(served: ServedHost, client: httpx2.AsyncClient) -> None:
    _refused(await _config(client, served, {PLUGIN_HEADER: "probe"}), 401, "AuthenticationError")
    # Without naming the plugin, or naming one the host has not loaded, nothing is looked at.
    _refused(await _config(client, served, {CONTEXT_HEADER: served.token("acme")}), 401, "AuthenticationError")
    token = served.token("acme", plugin="nosuch")
    _refused(
        await _config(client, served, {PLUGIN_HEADER: "nosuch", CONTEXT_HEADER: token}), 401, "AuthenticationError"
    )
    # A user's bearer token is no callback credential.
    bearer = {PLUGIN_HEADER: "probe", "Authorization": "Bearer not-a-token"}
    assert (await _config(client, served, bearer)).status_code == 401


async def test_forged_expired_and_misaddressed_tokens_are_refused(
    served: ServedHost, client: httpx2.AsyncClient
) -> None:
    acme = served.context("acme")
    forged = served.signer().issue("probe", acme)
    forged = forged[: forged.rindex(".") + 1] + "A" * 86  # the host's header and claims, a made-up signature
    from plexica.remote import ContextSigner

    other_key = ContextSigner([new_key()]).issue("probe", acme)  # a key the host never published
    expired = served.signer(clock=lambda: time.time() - 120).issue("probe", acme)
    for token in (forged, other_key, expired, "not.a.token"):
        response = await _config(client, served, {PLUGIN_HEADER: "probe", CONTEXT_HEADER: token})
        _refused(response, 401, "AuthenticationError")
    # Spy's token does not let anyone act as probe, nor probe's as spy.
    spy_token = served.token("acme", plugin="spy")
    _refused(
        await _config(client, served, {PLUGIN_HEADER: "probe", CONTEXT_HEADER: spy_token}), 401, "AuthenticationError"
    )
    probe_token = served.token("acme")
    _refused(
        await _config(client, served, {PLUGIN_HEADER: "spy", CONTEXT_HEADER: probe_token}), 401, "AuthenticationError"
    )
    # A host-level token names no tenant: it can act in none.
    _refused(
        await _config(client, served, {PLUGIN_HEADER: "probe", CONTEXT_HEADER: served.token(None)}),
        401,
        "AuthenticationError",
    )


async def test_a_token_for_one_tenant_never_acts_in_another(served: ServedHost, client: httpx2.AsyncClient) -> None:
    token = served.token("acme")
    elsewhere = {PLUGIN_HEADER: "probe", CONTEXT_HEADER: token, TENANT_HEADER: "globex"}
    _refused(await _config(client, served, elsewhere), 403, "PermissionDeniedError")
    # A tenant where probe is not installed refuses even a token the host signed for it.
    # A token is the host's own word that it is calling the plugin for that tenant (lifecycle hooks
    # run before an install is enabled and after it is gone), so it acts in its tenant; what a
    # plugin that is not installed there cannot have, such as its configuration, is still refused.
    not_installed = {PLUGIN_HEADER: "probe", CONTEXT_HEADER: served.token("globex")}
    _refused(await _config(client, served, not_installed), 404, "NotFoundError")
    # The body cannot name a tenant either: the cache write lands in the token's tenant only.
    set_body = {"key": "k", "value": "dg==", "tenant": "globex"}
    response = await client.post(
        served.callbacks + "/cache/set", json=set_body, headers={PLUGIN_HEADER: "probe", CONTEXT_HEADER: token}
    )
    assert response.status_code == 422  # an unknown field is refused, not obeyed


async def test_service_credentials_authenticate_until_rotated_or_revoked(
    served: ServedHost, client: httpx2.AsyncClient
) -> None:
    credentials = served.platform.remote_credentials
    issued = await credentials.create("probe")
    headers = {PLUGIN_HEADER: "probe", CREDENTIAL_HEADER: issued.value, TENANT_HEADER: "acme"}
    assert (await client.get(served.callbacks + "/tenant", headers=headers)).json()["slug"] == "acme"
    # The credential is probe's: naming another plugin, or a tenant probe is not in, is refused.
    _refused(await _config(client, served, {**headers, PLUGIN_HEADER: "spy"}), 401, "AuthenticationError")
    _refused(await _config(client, served, {**headers, TENANT_HEADER: "globex"}), 403, "PermissionDeniedError")
    _refused(await _config(client, served, {**headers, TENANT_HEADER: "nowhere"}), 403, "PermissionDeniedError")
    no_tenant = {PLUGIN_HEADER: "probe", CREDENTIAL_HEADER: issued.value}
    _refused(await _config(client, served, no_tenant), 422, "ValidationError")
    wrong = issued.value[:-4] + ("AAAA" if not issued.value.endswith("AAAA") else "BBBB")
    _refused(await _config(client, served, {**headers, CREDENTIAL_HEADER: wrong}), 401, "AuthenticationError")

    rotated = await credentials.rotate("probe")
    _refused(await _config(client, served, headers), 401, "AuthenticationError")
    assert (await _config(client, served, {**headers, CREDENTIAL_HEADER: rotated.value})).status_code == 200
    await credentials.revoke("probe")
    _refused(await _config(client, served, {**headers, CREDENTIAL_HEADER: rotated.value}), 401, "AuthenticationError")


async def test_only_the_callback_operations_exist(served: ServedHost, client: httpx2.AsyncClient) -> None:
    headers = {PLUGIN_HEADER: "probe", CONTEXT_HEADER: served.token("acme")}
    missing = await client.post(served.callbacks + "/sql", json={}, headers=headers)
    assert missing.status_code == 404
    wrong_method = await client.delete(served.callbacks + "/config", headers=headers)
    assert wrong_method.status_code == 405
    # A transactional publish needs a remote session, and a SQLite host gives remote plugins none.
    prepare = await client.post(
        served.callbacks + "/events/prepare", json={"type": "probe.item.created"}, headers=headers
    )
    _refused(prepare, 409, "ConflictError")
