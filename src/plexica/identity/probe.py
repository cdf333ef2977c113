"""The identity provider's health probe: Keycloak answers the platform realm's OIDC discovery.

Discovery is what token verification itself depends on (issuer metadata, then the JWKS), needs no
credentials, and is served on Keycloak's public port, so the probe works whether or not admin
credentials or the management port are configured.
"""

from __future__ import annotations

from typing import final

import httpx2

from plexica.settings import KeycloakSettings
from plexica_sdk.errors import BackendUnavailableError

__all__ = ["KeycloakProbe"]


@final
class KeycloakProbe:
    """Pings Keycloak through the host's shared HTTP client.

    Args:
        client: the host's HTTP client (its pool is reused; the caller bounds the time).
        settings: where Keycloak is; the realm asked about is the platform realm, or the shared
            realm under the ``organizations`` strategy.
    """

    def __init__(self, client: httpx2.AsyncClient, settings: KeycloakSettings) -> None:
        realm = settings.organizations_realm if settings.strategy == "organizations" else settings.platform_realm
        self._client = client
        self.url = f"{settings.url.rstrip('/')}/realms/{realm}/.well-known/openid-configuration"

    async def ping(self) -> None:
        """Raise :class:`BackendUnavailableError` unless discovery answers 200."""
        try:
            response = await self._client.get(self.url)
        except httpx2.HTTPError as exc:
            raise BackendUnavailableError("keycloak", f"discovery failed: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise BackendUnavailableError("keycloak", f"discovery answered {response.status_code}")
