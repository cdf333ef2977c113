"""Tenant naming: slug rules, and identifiers that are safe to quote into DDL."""

from __future__ import annotations

import pytest

from plexica.tenancy.naming import (
    SLUG_RE,
    bucket_name,
    cache_prefix,
    check_identifier,
    quote_identifier,
    realm_name,
    schema_name,
    validate_slug,
)
from plexica_sdk.errors import InvalidTenantSlugError, ValidationError

LONGEST_SLUG = "a" + "b1-" * 16 + "z"  # 50 characters, dashes included

VALID_SLUGS = {
    "shortest": "abc",
    "word": "acme",
    "digits": "acme42",
    "dashes": "acme-corp-eu",
    "longest": LONGEST_SLUG,
}

INVALID_SLUGS = {
    "too-short": "ab",
    "too-long": "a" * 51,
    "empty": "",
    "uppercase": "Acme",
    "leading-digit": "1acme",
    "leading-dash": "-acme",
    "trailing-dash": "acme-",
    "double-dash": "acme--corp",
    "underscore": "acme_corp",
    "dot": "acme.corp",
    "space": "acme corp",
    "non-ascii": "acmé",
    "quote": 'acme"',
    "semicolon": "acme;drop",
    "trailing-newline": "acme\n",
}


def test_the_longest_slug_is_fifty_characters() -> None:
    assert len(LONGEST_SLUG) == 50


@pytest.mark.parametrize("slug", VALID_SLUGS.values(), ids=VALID_SLUGS.keys())
def test_valid_slugs_are_returned_unchanged(slug: str) -> None:
    assert validate_slug(slug) == slug


@pytest.mark.parametrize("slug", INVALID_SLUGS.values(), ids=INVALID_SLUGS.keys())
def test_invalid_slugs_are_rejected_naming_the_slug(slug: str) -> None:
    with pytest.raises(InvalidTenantSlugError) as excinfo:
        validate_slug(slug)
    assert excinfo.value.tenant_slug == slug
    assert excinfo.value.field == "slug"


def test_a_non_string_slug_is_rejected() -> None:
    with pytest.raises(InvalidTenantSlugError):
        validate_slug(42)  # type: ignore[arg-type]


def test_the_slug_pattern_alone_allows_double_dashes_so_validate_slug_is_the_rule() -> None:
    assert SLUG_RE.match("acme--corp")
    with pytest.raises(InvalidTenantSlugError):
        validate_slug("acme--corp")


@pytest.mark.parametrize("slug", VALID_SLUGS.values(), ids=VALID_SLUGS.keys())
def test_schema_name_is_a_safe_identifier_within_postgres_63_bytes(slug: str) -> None:
    schema = schema_name(slug)
    assert len(schema.encode()) <= 63
    assert check_identifier(schema) == schema


def test_schema_name_replaces_dashes_with_underscores() -> None:
    assert schema_name("acme-corp-eu") == "tenant_acme_corp_eu"


def test_cache_prefix_bucket_and_realm_follow_the_slug() -> None:
    assert cache_prefix("acme") == "tenant:{acme}:"
    assert bucket_name("acme") == "tenant-acme"
    assert realm_name("acme") == "tenant-acme"
    assert realm_name("acme", "org-{slug}-prod") == "org-acme-prod"


@pytest.mark.parametrize("derive", [schema_name, cache_prefix, bucket_name, realm_name], ids=lambda f: f.__name__)
def test_every_derived_name_validates_the_slug_first(derive: object) -> None:
    assert callable(derive)
    with pytest.raises(InvalidTenantSlugError):
        derive("Acme;DROP")


@pytest.mark.parametrize(
    "name",
    ["tenant_acme", "notes", "_private", "a", "a" * 63, "table_2"],
    ids=["schema", "word", "leading-underscore", "one-char", "63-chars", "digit"],
)
def test_safe_identifiers_are_returned_unchanged(name: str) -> None:
    assert check_identifier(name) == name


@pytest.mark.parametrize(
    "name",
    [
        'tenant"acme',
        "tenant'acme",
        "tenant_acme;drop schema public",
        "Tenant_Acme",
        "a" * 64,
        "",
        "1tenant",
        "tenant-acme",
        "tenant acme",
        "tenant.acme",
        "tenant_acme\n",
        "ténant",
    ],
    ids=[
        "double-quote",
        "single-quote",
        "semicolon",
        "uppercase",
        "too-long",
        "empty",
        "leading-digit",
        "dash",
        "space",
        "dot",
        "trailing-newline",
        "non-ascii",
    ],
)
def test_unsafe_identifiers_are_rejected(name: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        check_identifier(name)
    assert excinfo.value.field == "identifier"


def test_the_rejection_message_stays_short_for_a_huge_identifier() -> None:
    with pytest.raises(ValidationError) as excinfo:
        check_identifier("x" * 10_000)
    assert len(str(excinfo.value)) < 120


def test_quote_identifier_double_quotes_a_safe_identifier() -> None:
    assert quote_identifier("tenant_acme") == '"tenant_acme"'


def test_quote_identifier_refuses_an_identifier_that_could_escape_its_quotes() -> None:
    with pytest.raises(ValidationError):
        quote_identifier('x"; DROP SCHEMA public; --')
