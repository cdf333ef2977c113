"""The dev issuer: its key file, per-realm keys and published documents."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from plexica.auth import DevIssuer, DevIssuerKeyError
from plexica.settings import Settings
from plexica_sdk.errors import SettingsError, ValidationError
from tests.plexica.auth.conftest import AUDIENCE, BASE_URL, NOW, segments


def test_key_file_is_created_private_on_first_use(tmp_path: Path) -> None:
    key_file = tmp_path / "data" / "dev-issuer-key.json"
    issuer = DevIssuer(key_file, base_url=BASE_URL)
    assert not key_file.exists()  # nothing happens at construction

    issuer.mint(realm="tenant-acme", subject="u")

    assert key_file.exists()
    if sys.platform != "win32":
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [p.name for p in key_file.parent.iterdir()] == ["dev-issuer-key.json"]  # no temp file left


def test_key_file_is_reused(tmp_path: Path) -> None:
    key_file = tmp_path / "dev-issuer-key.json"
    first = DevIssuer(key_file, base_url=BASE_URL).jwks("tenant-acme")
    content = key_file.read_bytes()

    again = DevIssuer(key_file, base_url=BASE_URL).jwks("tenant-acme")

    assert again == first
    assert key_file.read_bytes() == content


def test_from_settings_keys_under_data_dir(tmp_path: Path) -> None:
    issuer = DevIssuer.from_settings(Settings(data_dir=tmp_path))

    assert issuer.key_file == tmp_path / "dev-issuer-key.json"
    assert issuer.issuer("tenant-acme") == "http://plexica.localhost/realms/tenant-acme"
    assert issuer.audience == "plexica-api"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b'{"format": "something-else", "seed": "AA"}', "not a plexica-dev-issuer/v1 document"),
        (b"[]", "not a plexica-dev-issuer/v1 document"),
        (b'{"format": "plexica-dev-issuer/v1", "seed": "AAAA"}', "seed must be 32 bytes"),
        (b'{"format": "plexica-dev-issuer/v1", "seed": "A"}', "seed is not base64url"),
    ],
    ids=["truncated", "binary", "other-format", "not-object", "short-seed", "bad-base64"],
)
def test_corrupt_key_file_is_a_clear_error_naming_the_file(tmp_path: Path, content: bytes, problem: str) -> None:
    key_file = tmp_path / "dev-issuer-key.json"
    key_file.write_bytes(content)

    with pytest.raises(DevIssuerKeyError) as caught:
        DevIssuer(key_file, base_url=BASE_URL).mint(realm="tenant-acme", subject="u")

    assert isinstance(caught.value, SettingsError)
    assert caught.value.path == str(key_file)
    assert problem in str(caught.value)
    assert str(key_file) in str(caught.value)
    assert key_file.read_bytes() == content  # never overwritten


def test_unreadable_key_location_is_a_clear_error(tmp_path: Path) -> None:
    key_file = tmp_path / "dev-issuer-key.json"
    key_file.mkdir()

    with pytest.raises(DevIssuerKeyError, match="cannot be read or created"):
        DevIssuer(key_file, base_url=BASE_URL).load()


def test_each_realm_has_its_own_key(dev_issuer: DevIssuer) -> None:
    kids = {dev_issuer.jwks(realm)["keys"][0]["kid"] for realm in ("tenant-acme", "tenant-globex", "plexica-platform")}

    assert len(kids) == 3


def test_jwks_holds_public_keys_only(dev_issuer: DevIssuer) -> None:
    (key,) = dev_issuer.jwks("tenant-acme")["keys"]

    assert "d" not in key
    assert key["kty"] == "EC"
    assert key["crv"] == "P-256"
    assert (key["use"], key["alg"]) == ("sig", "ES256")


def test_discovery_document_is_oidc_shaped(dev_issuer: DevIssuer) -> None:
    document = dev_issuer.discovery("tenant-acme")

    assert document["issuer"] == f"{BASE_URL}/realms/tenant-acme"
    assert document["jwks_uri"] == f"{BASE_URL}/realms/tenant-acme/protocol/openid-connect/certs"
    assert document["id_token_signing_alg_values_supported"] == ["ES256"]


def test_minted_token_is_keycloak_shaped(dev_issuer: DevIssuer) -> None:
    token = dev_issuer.mint(
        realm="tenant-acme", subject="user-1", roles=["member"], username="alice", email="a@example.com", expires_in=60
    )

    header, claims = segments(token)
    assert header == {"alg": "ES256", "kid": dev_issuer.jwks("tenant-acme")["keys"][0]["kid"], "typ": "JWT"}
    assert claims["iss"] == f"{BASE_URL}/realms/tenant-acme"
    assert (claims["sub"], claims["aud"], claims["typ"]) == ("user-1", AUDIENCE, "Bearer")
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (NOW, NOW, NOW + 60)
    assert claims["realm_access"] == {"roles": ["member"]}
    assert (claims["preferred_username"], claims["email"]) == ("alice", "a@example.com")
    assert claims["jti"] != segments(dev_issuer.mint(realm="tenant-acme", subject="user-1"))[1]["jti"]


@pytest.mark.parametrize("realm", ["", "tenant/acme", "../etc", "tenant acme", "x" * 101], ids=str)
def test_invalid_realm_names_are_refused(dev_issuer: DevIssuer, realm: str) -> None:
    with pytest.raises(ValidationError):
        dev_issuer.mint(realm=realm, subject="u")
    assert dev_issuer.key_set_for_issuer(f"{BASE_URL}/realms/{realm}") is None


def test_key_set_for_issuer_only_answers_its_own_base_url(dev_issuer: DevIssuer) -> None:
    assert dev_issuer.key_set_for_issuer(f"{BASE_URL}/realms/tenant-acme") is not None
    assert dev_issuer.key_set_for_issuer("http://evil.example/realms/tenant-acme") is None
