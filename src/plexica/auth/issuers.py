"""Issuer → tenant strategies: which tenant (if any) a token's ``iss`` speaks for.

Pure functions of strings and claims, no IO. A strategy is consulted twice: before the signature
check (:meth:`IssuerStrategy.realm_of`, on the *unverified* ``iss``, only to refuse unknown
issuers and pick the key set), and after it (:meth:`IssuerStrategy.resolve`, on verified claims).
"""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping
from typing import Any, Protocol

import attrs

from plexica.errors import AuthenticationError, ConfigurationError

__all__ = [
    "DEFAULT_PLATFORM_REALM",
    "DEFAULT_REALM_TEMPLATE",
    "REALM_NAME_RE",
    "IssuerMatch",
    "IssuerStrategy",
    "OrganizationsStrategy",
    "RealmPerTenantStrategy",
    "organization_alias",
]

# ARCHITECTURE.md §4; duplicated until tenancy/naming.py exports it.
_SLUG = r"[a-z][a-z0-9-]{1,48}[a-z0-9]"
_SLUG_RE = re.compile(_SLUG)
#: Same defaults as ``KeycloakSettings``, so dev-issuer tokens look like Keycloak's.
DEFAULT_REALM_TEMPLATE = "tenant-{slug}"
DEFAULT_PLATFORM_REALM = "plexica-platform"
#: Realm names accepted here: Keycloak's, restricted to what is safe in a URL path segment.
REALM_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # use fullmatch: "$" allows "\n"


@attrs.frozen(kw_only=True)
class IssuerMatch:
    """What an accepted issuer (plus, for organizations, the verified claims) says about a token."""

    issuer: str
    realm: str
    tenant_slug: str | None
    is_platform: bool


class IssuerStrategy(Protocol):
    """Maps an issuer to a realm and a tenant; every method raises :class:`AuthenticationError`."""

    def realm_of(self, issuer: str) -> str:
        """The realm of an acceptable issuer; called on the unverified ``iss``."""
        ...

    def resolve(self, issuer: str, claims: Mapping[str, Any]) -> IssuerMatch:
        """Tenant and platform flag of a token whose signature and claims are verified."""
        ...


def _normalize_base(base_url: str) -> str:
    base = base_url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ConfigurationError(f"issuer base URL must be http(s): {base_url!r}")
    return base


def _realm_from_issuer(base: str, issuer: str) -> str:
    prefix = f"{base}/realms/"
    if not issuer.startswith(prefix):
        raise AuthenticationError("unknown issuer")
    realm = issuer[len(prefix) :]
    if not REALM_NAME_RE.fullmatch(realm):
        raise AuthenticationError("unknown issuer")
    return realm


def _check_realm(realm: str, what: str) -> str:
    if not REALM_NAME_RE.fullmatch(realm):
        raise ConfigurationError(f"invalid {what} {realm!r}")
    return realm


@typing.final
class RealmPerTenantStrategy:
    """One identity realm per tenant: ``iss`` = ``{base_url}/realms/{realm_template with slug}``.

    The platform realm (super-admins) has no tenant. Any other realm, or another base URL, is
    refused before a key is looked up, so foreign issuers cost no JWKS fetch.
    """

    def __init__(
        self,
        base_url: str,
        *,
        realm_template: str = DEFAULT_REALM_TEMPLATE,
        platform_realm: str = DEFAULT_PLATFORM_REALM,
    ) -> None:
        if realm_template.count("{slug}") != 1:
            raise ConfigurationError(f"realm template must contain '{{slug}}' exactly once: {realm_template!r}")
        prefix, suffix = realm_template.split("{slug}")
        self.base_url = _normalize_base(base_url)
        self.realm_template = realm_template
        self.platform_realm = _check_realm(platform_realm, "platform realm")
        self._realm_re = re.compile(rf"{re.escape(prefix)}(?P<slug>{_SLUG}){re.escape(suffix)}")

    def issuer_for(self, realm: str) -> str:
        """The ``iss`` of tokens from ``realm``."""
        return f"{self.base_url}/realms/{realm}"

    def realm_for_tenant(self, tenant_slug: str) -> str:
        """The realm name of a tenant, from the template."""
        return self.realm_template.replace("{slug}", tenant_slug)

    def realm_of(self, issuer: str) -> str:
        realm = _realm_from_issuer(self.base_url, issuer)
        if realm != self.platform_realm and not self._realm_re.fullmatch(realm):
            raise AuthenticationError("unknown issuer")
        return realm

    def resolve(self, issuer: str, claims: Mapping[str, Any]) -> IssuerMatch:
        realm = self.realm_of(issuer)
        if realm == self.platform_realm:
            return IssuerMatch(issuer=issuer, realm=realm, tenant_slug=None, is_platform=True)
        match = self._realm_re.fullmatch(realm)
        assert match is not None  # realm_of accepted it
        return IssuerMatch(issuer=issuer, realm=realm, tenant_slug=match["slug"], is_platform=False)


def organization_alias(claim: object) -> str:
    """The one organization alias in a Keycloak ``organization`` claim.

    Keycloak emits a list of aliases (``["acme"]``) or, with the "add organization id" mapper
    option, an object keyed by alias (``{"acme": {"id": "..."}}``). Exactly one is required:
    a token of several organizations does not say which tenant it is for.
    """
    if isinstance(claim, str):
        aliases = [claim]
    elif isinstance(claim, list):
        aliases = claim
    elif isinstance(claim, Mapping):
        aliases = list(claim)
    else:
        raise AuthenticationError("token has no organization")
    if len(aliases) != 1:
        raise AuthenticationError("token must name exactly one organization")
    alias = aliases[0]
    if not isinstance(alias, str) or not _SLUG_RE.fullmatch(alias):
        raise AuthenticationError("token organization is not a tenant slug")
    return alias


@typing.final
class OrganizationsStrategy:
    """One realm for every tenant, with Keycloak Organizations: the tenant is the ``organization``.

    Suits fleets of thousands of tenants where a realm each is too heavy. ``platform_realm``,
    when set, is a second accepted realm whose tokens carry no tenant (super-admins).
    """

    def __init__(self, base_url: str, realm: str, *, platform_realm: str | None = None) -> None:
        self.base_url = _normalize_base(base_url)
        self.realm = _check_realm(realm, "realm")
        self.platform_realm = None if platform_realm is None else _check_realm(platform_realm, "platform realm")
        if self.platform_realm == self.realm:
            raise ConfigurationError("the organizations realm cannot also be the platform realm")

    def realm_of(self, issuer: str) -> str:
        realm = _realm_from_issuer(self.base_url, issuer)
        if realm not in (self.realm, self.platform_realm):
            raise AuthenticationError("unknown issuer")
        return realm

    def resolve(self, issuer: str, claims: Mapping[str, Any]) -> IssuerMatch:
        realm = self.realm_of(issuer)
        if realm == self.platform_realm:
            return IssuerMatch(issuer=issuer, realm=realm, tenant_slug=None, is_platform=True)
        slug = organization_alias(claims.get("organization"))
        return IssuerMatch(issuer=issuer, realm=realm, tenant_slug=slug, is_platform=False)
