"""Issuer → tenant strategies."""

from __future__ import annotations

from typing import Any

import pytest

from plexica.auth import IssuerMatch, OrganizationsStrategy, RealmPerTenantStrategy
from plexica_sdk.errors import AuthenticationError

BASE = "https://id.example.com"


def test_realm_per_tenant_maps_realm_to_slug() -> None:
    strategy = RealmPerTenantStrategy(BASE + "/")

    match = strategy.resolve(f"{BASE}/realms/tenant-acme", {})

    assert match == IssuerMatch(
        issuer=f"{BASE}/realms/tenant-acme", realm="tenant-acme", tenant_slug="acme", is_platform=False
    )
    assert strategy.issuer_for(strategy.realm_for_tenant("acme")) == f"{BASE}/realms/tenant-acme"


def test_platform_realm_has_no_tenant() -> None:
    match = RealmPerTenantStrategy(BASE).resolve(f"{BASE}/realms/plexica-platform", {})

    assert (match.tenant_slug, match.is_platform) == (None, True)


def test_custom_realm_template() -> None:
    strategy = RealmPerTenantStrategy(BASE, realm_template="org.{slug}.prod", platform_realm="ops")

    assert strategy.resolve(f"{BASE}/realms/org.acme.prod", {}).tenant_slug == "acme"
    assert strategy.resolve(f"{BASE}/realms/ops", {}).is_platform
    with pytest.raises(AuthenticationError):
        strategy.realm_of(f"{BASE}/realms/orgXacmeXprod")  # dots in the template are literal


@pytest.mark.parametrize(
    "issuer",
    [
        "https://id.example.com.evil/realms/tenant-acme",
        "http://id.example.com/realms/tenant-acme",
        f"{BASE}/realms/master",
        f"{BASE}/realms/tenant-a",
        f"{BASE}/realms/tenant-ACME",
        f"{BASE}/realms/tenant-acme/",
        f"{BASE}/realms/tenant-acme?x=1",
        f"{BASE}/realms/tenant-acme%2F..",
        f"{BASE}/auth/realms/tenant-acme",
        f"{BASE}/realms/tenant-acme\n",
        f"{BASE}/realms/plexica-platform\n",
    ],
)
def test_realm_per_tenant_refuses_other_issuers(issuer: str) -> None:
    with pytest.raises(AuthenticationError, match="unknown issuer"):
        RealmPerTenantStrategy(BASE).realm_of(issuer)


@pytest.mark.parametrize("template", ["tenant", "{slug}-{slug}"])
def test_realm_template_needs_exactly_one_slug(template: str) -> None:
    with pytest.raises(ValueError, match="exactly once"):
        RealmPerTenantStrategy(BASE, realm_template=template)


def test_base_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="http"):
        RealmPerTenantStrategy("id.example.com")


@pytest.mark.parametrize(
    ("claim", "slug"),
    [(["acme"], "acme"), ({"acme": {"id": "1"}}, "acme"), ("acme", "acme")],
    ids=["list", "map", "string"],
)
def test_organizations_strategy_takes_tenant_from_claim(claim: Any, slug: str) -> None:
    strategy = OrganizationsStrategy(BASE, "plexica")

    match = strategy.resolve(f"{BASE}/realms/plexica", {"organization": claim})

    assert (match.tenant_slug, match.is_platform, match.realm) == (slug, False, "plexica")


def test_organizations_strategy_platform_realm() -> None:
    strategy = OrganizationsStrategy(BASE, "plexica", platform_realm="plexica-platform")

    assert strategy.resolve(f"{BASE}/realms/plexica-platform", {}).is_platform
    with pytest.raises(AuthenticationError, match="unknown issuer"):
        OrganizationsStrategy(BASE, "plexica").realm_of(f"{BASE}/realms/plexica-platform")


def test_organizations_strategy_refuses_same_realm_for_platform() -> None:
    with pytest.raises(ValueError, match="platform realm"):
        OrganizationsStrategy(BASE, "plexica", platform_realm="plexica")


@pytest.mark.parametrize("claim", [None, 3, [], ["a", "b"], {}, [7], ["acme\n"]], ids=str)
def test_organizations_strategy_needs_exactly_one_org(claim: Any) -> None:
    with pytest.raises(AuthenticationError):
        OrganizationsStrategy(BASE, "plexica").resolve(f"{BASE}/realms/plexica", {"organization": claim})
