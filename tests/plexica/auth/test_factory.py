"""``build_token_verifier``: the verifier each settings combination asks for."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

import plexica.auth
from plexica.auth import (
    DevIssuer,
    OidcKeySource,
    OrganizationsStrategy,
    RealmPerTenantStrategy,
    StaticKeySource,
    build_token_verifier,
)
from plexica.settings import AuthSettings, KeycloakSettings, Settings
from plexica_sdk.errors import SettingsError

pytestmark = pytest.mark.anyio


@pytest.fixture
async def http_client() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(trust_env=False) as client:
        yield client


async def test_embedded_mode_verifies_dev_issuer_tokens(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    issuer = DevIssuer.from_settings(settings)

    verifier = build_token_verifier(settings, None, issuer)
    verified = await verifier.verify(issuer.mint(realm="plexica-platform", subject="root", roles=["super_admin"]))

    assert isinstance(verifier.key_source, StaticKeySource)
    assert verifier.algorithms == {"ES256"}
    assert verified.principal.is_super_admin


def test_embedded_mode_in_production_refuses_to_build(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="development token issuer"):
        build_token_verifier(Settings(data_dir=tmp_path, environment="production"))
    assert not (tmp_path / "dev-issuer-key.json").exists()


async def test_embedded_mode_builds_its_own_dev_issuer(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    token = DevIssuer.from_settings(settings).mint(realm="tenant-acme", subject="u")

    assert (await build_token_verifier(settings).verify(token)).tenant_slug == "acme"


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [("realm_per_tenant", RealmPerTenantStrategy), ("organizations", OrganizationsStrategy)],
)
async def test_keycloak_mode_uses_oidc_keys_and_the_configured_strategy(
    http_client: httpx2.AsyncClient, strategy: str, expected: type
) -> None:
    keycloak = KeycloakSettings(url="https://id.example.com", strategy=strategy)  # type: ignore[arg-type]
    settings = Settings(auth=AuthSettings(keycloak=keycloak, algorithms=("RS256",), jwks_refresh_min_seconds=5))

    verifier = build_token_verifier(settings, http_client)

    assert isinstance(verifier.strategy, expected)
    assert isinstance(verifier.key_source, OidcKeySource)
    assert verifier.key_source.refresh_min_seconds == 5
    assert verifier.algorithms == {"RS256"}


def test_keycloak_mode_needs_an_http_client() -> None:
    settings = Settings(auth=AuthSettings(keycloak=KeycloakSettings(url="https://id.example.com")))

    with pytest.raises(ValueError, match="HTTP client"):
        build_token_verifier(settings)


def test_public_api_is_sorted_and_complete() -> None:
    assert plexica.auth.__all__ == sorted(plexica.auth.__all__)
    assert all(hasattr(plexica.auth, name) for name in plexica.auth.__all__)
