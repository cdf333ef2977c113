"""The host's context signer: what it signs verifies in the SDK, rotation keeps old tokens valid until removal."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import attrs
import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, OKPKey

from plexica.remote import ContextSigner, generate_signing_key, load_signer, parse_signing_key
from plexica.remote.context_tokens import KEY_FILE_NAME
from plexica.settings import load_settings
from plexica_sdk.errors import AuthenticationError, SettingsError
from plexica_sdk.remote import JWKS_PATH, ContextVerifier
from plexica_sdk.types import Principal, TenantContext
from tests.plexica.remote.conftest import ServedHost

pytestmark = pytest.mark.anyio

TENANT = TenantContext(
    tenant_id="t-1",
    slug="acme",
    schema="tenant_acme",
    user=Principal(id="u-7", tenant_slug="acme", roles=("tenant_admin",), email="ada@example.com"),
    workspace_id="w-1",
    trace_id="0af7651916cd43dd8448eb211c80319c",
)


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def key() -> OKPKey:
    return parse_signing_key(generate_signing_key())


async def test_a_signed_token_verifies_in_the_sdk_with_every_claim_and_no_pii() -> None:
    clock = Clock()
    signer = ContextSigner([key()], ttl_seconds=20, clock=clock)

    async def jwks() -> dict[str, object]:
        return signer.jwks()

    verifier = ContextVerifier("notes", jwks, issuer="plexica", clock=clock)
    token = signer.issue("notes", TENANT)
    remote = await verifier.verify(token)
    assert remote.tenant is not None
    # Everything but the user's e-mail address and name: identifiers only cross the wire.
    assert remote.tenant == attrs.evolve(TENANT, user=Principal(id="u-7", tenant_slug="acme", roles=("tenant_admin",)))
    assert (remote.tenant.tenant_id, remote.tenant.slug, remote.tenant.schema) == ("t-1", "acme", "tenant_acme")
    assert remote.tenant.user is not None and remote.tenant.user.roles == ("tenant_admin",)
    assert remote.tenant.user.email is None  # identifiers only: no e-mail address crosses the wire
    assert (remote.tenant.workspace_id, remote.tenant.trace_id) == ("w-1", TENANT.trace_id)
    assert remote.expires_at - remote.issued_at == 20
    assert "ada@example.com" not in token
    assert signer.issue("notes", TENANT) != signer.issue("notes", TENANT)  # a fresh jti per call


def test_a_signed_token_is_a_standard_jwt_that_joserfc_verifies_against_the_published_jwks() -> None:
    signer = ContextSigner([key()], clock=Clock())
    token = signer.issue("notes", TENANT)
    published = KeySet.import_key_set(signer.jwks())  # type: ignore[arg-type]
    decoded = jwt.decode(token, published, algorithms=["Ed25519"])
    assert decoded.header == {"alg": "Ed25519", "typ": "plexica-context+jwt", "kid": signer.current_kid}
    assert decoded.claims["aud"] == "notes" and decoded.claims["exp"] - decoded.claims["iat"] == 30
    assert decoded.claims["tenant"]["slug"] == "acme" and decoded.claims["sub"] == "u-7"
    assert "=" not in token and len(token.split(".")[2]) == 86  # unpadded base64url of a 64-byte Ed25519 signature


def test_the_jwks_holds_public_keys_only() -> None:
    signer = ContextSigner([key(), key()])
    document = signer.jwks()
    assert len(document["keys"]) == 2
    assert all("d" not in entry and entry["alg"] == "Ed25519" and entry["use"] == "sig" for entry in document["keys"])
    assert document["keys"][0]["kid"] == signer.current_kid


async def test_kid_rotation_keeps_the_previous_key_verifying_until_it_is_removed() -> None:
    clock = Clock()
    old, new = key(), key()
    before = ContextSigner([old], clock=clock)
    during = ContextSigner([new, old], clock=clock)
    after = ContextSigner([new], clock=clock)
    published = {"signer": during}

    async def jwks() -> dict[str, object]:
        return published["signer"].jwks()

    verifier = ContextVerifier("notes", jwks, clock=clock, max_age_seconds=60)
    in_flight = before.issue("notes", TENANT)  # signed just before the rotation
    assert (await verifier.verify(during.issue("notes", TENANT))).audience == "notes"
    assert during.current_kid == new.kid
    await verifier.verify(in_flight)  # the old kid still verifies while listed
    published["signer"] = after
    clock.now += 61  # the verifier's cache ages out and it refetches the keys
    with pytest.raises(AuthenticationError, match="unknown key"):
        await verifier.verify(before.issue("notes", TENANT))
    await verifier.verify(after.issue("notes", TENANT))


def test_lifetimes_beyond_60_seconds_are_refused_by_signer_and_settings() -> None:
    with pytest.raises(SettingsError, match="60"):
        ContextSigner([key()], ttl_seconds=61)
    with pytest.raises(SettingsError, match="token_ttl_seconds"):
        load_settings(environ={}, remote={"token_ttl_seconds": 61})


def test_development_keeps_one_generated_key_in_data_dir(tmp_path: Path) -> None:
    settings = load_settings(environ={}, environment="development", data_dir=str(tmp_path))
    signer = load_signer(settings)
    assert signer is not None and not (tmp_path / KEY_FILE_NAME).exists()  # nothing written until first use
    kid = signer.current_kid
    path = tmp_path / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_signer(settings)
    assert again is not None and again.current_kid == kid  # reused, not regenerated


def test_production_signs_only_with_configured_keys(tmp_path: Path) -> None:
    keycloak = {"url": "http://127.0.0.1:1", "admin_username": "a", "admin_password": "b"}
    production = load_settings(
        environ={}, environment="production", data_dir=str(tmp_path), auth={"keycloak": keycloak}
    )
    assert load_signer(production) is None
    configured = generate_signing_key()
    signer = load_signer(
        load_settings(
            environ={}, environment="production", auth={"keycloak": keycloak}, remote={"signing_keys": [configured]}
        )
    )
    assert signer is not None and signer.current_kid == json.loads(configured)["kid"]
    assert not (tmp_path / KEY_FILE_NAME).exists()


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("not json", id="not-json"),
        pytest.param(json.dumps({"kty": "oct", "k": "c2VjcmV0"}), id="hmac-secret"),
        pytest.param(
            json.dumps({k: v for k, v in json.loads(generate_signing_key()).items() if k != "d"}), id="public-only"
        ),
    ],
)
def test_a_configured_key_that_is_no_private_ed25519_jwk_is_a_settings_error(text: str) -> None:
    with pytest.raises(SettingsError, match="signing_keys") as info:
        load_signer(load_settings(environ={}, remote={"signing_keys": [text]}))
    assert "c2VjcmV0" not in str(info.value)


def test_settings_never_print_the_signing_keys() -> None:
    secret = generate_signing_key()
    settings = load_settings(environ={}, remote={"signing_keys": [secret]})
    assert json.loads(secret)["d"] not in repr(settings)


async def test_the_hosts_jwks_is_served_anonymously_over_http_and_verifies_its_tokens(served_host: ServedHost) -> None:
    async with httpx2.AsyncClient() as client:
        response = await client.get(served_host.url + JWKS_PATH)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "public, max-age=60"
    assert all("d" not in entry for entry in response.json()["keys"])
    signer = load_signer(served_host.settings)  # the same data_dir: the host's own key
    assert signer is not None
    verifier = ContextVerifier("notes", served_host.url + JWKS_PATH, issuer="plexica")
    try:
        remote = await verifier.verify(signer.issue("notes", TENANT))
        assert remote.tenant is not None and remote.tenant.slug == "acme" and verifier.fetches == 1
        forged = ContextSigner([key()]).issue("notes", TENANT)
        with pytest.raises(AuthenticationError):
            await verifier.verify(forged)
    finally:
        await verifier.aclose()
