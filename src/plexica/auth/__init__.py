"""Authentication: bearer JWT verification, issuer → tenant strategies, keys, the dev issuer, gateway mode."""

from __future__ import annotations

import httpx2

from plexica.auth.dev_issuer import DevIssuer, DevIssuerKeyError
from plexica.auth.gateway import GatewayAssertion, GatewaySigner, verify_gateway_headers
from plexica.auth.issuers import IssuerMatch, IssuerStrategy, OrganizationsStrategy, RealmPerTenantStrategy
from plexica.auth.jwks import KeySource, OidcKeySource, StaticKeySource
from plexica.auth.tokens import TokenVerifier, VerifiedToken
from plexica.errors import ConfigurationError
from plexica.settings import Settings, check_production

__all__ = [
    "DevIssuer",
    "DevIssuerKeyError",
    "GatewayAssertion",
    "GatewaySigner",
    "IssuerMatch",
    "IssuerStrategy",
    "KeySource",
    "OidcKeySource",
    "OrganizationsStrategy",
    "RealmPerTenantStrategy",
    "StaticKeySource",
    "TokenVerifier",
    "VerifiedToken",
    "build_token_verifier",
    "verify_gateway_headers",
]


def build_token_verifier(
    settings: Settings,
    http_client: httpx2.AsyncClient | None = None,
    dev_issuer: DevIssuer | None = None,
) -> TokenVerifier:
    """The token verifier ``settings`` ask for.

    Without ``settings.auth.keycloak``: tokens of the built-in dev issuer (``dev_issuer``, or one
    keyed under ``data_dir``), ES256 only, keys in process. With it: the configured strategy and
    keys from each realm's OIDC discovery and JWKS, fetched through ``http_client``.

    Raises:
        SettingsError: production without Keycloak in token mode (see :func:`plexica.settings.check_production`).
        ValueError: Keycloak is configured but no ``http_client`` was given.
    """
    auth = settings.auth
    keycloak = auth.keycloak
    if keycloak is None:
        # Anyone who can read data_dir can mint any token, super-admin included: never in production
        # (in gateway mode this verifier is never asked, so its keys vouch for nobody).
        check_production(settings)
        issuer = dev_issuer or DevIssuer.from_settings(settings)
        strategy: IssuerStrategy = issuer.strategy()  # Keycloak's default realm names
        return TokenVerifier(
            strategy,
            StaticKeySource(issuer.key_set_for_issuer),
            audience=auth.audience,
            algorithms=("ES256",),
            leeway=auth.leeway_seconds,
        )
    if http_client is None:
        raise ConfigurationError("Keycloak token verification needs an HTTP client")
    if keycloak.strategy == "organizations":
        strategy = OrganizationsStrategy(
            keycloak.url, keycloak.organizations_realm, platform_realm=keycloak.platform_realm
        )
    else:
        strategy = RealmPerTenantStrategy(
            keycloak.url, realm_template=keycloak.realm_template, platform_realm=keycloak.platform_realm
        )
    return TokenVerifier(
        strategy,
        OidcKeySource(http_client, refresh_min_seconds=auth.jwks_refresh_min_seconds),
        audience=auth.audience,
        algorithms=auth.algorithms,
        leeway=auth.leeway_seconds,
    )
