"""Workspace input rules: names, slugs, descriptions, roles."""

from __future__ import annotations

import pytest

from plexica.workspaces.models import role_at_least
from plexica.workspaces.rules import check_description, check_name, check_role, check_slug, slug_from
from plexica_sdk.errors import ValidationError


@pytest.mark.parametrize(
    ("name", "slug"),
    [("Sales", "sales"), ("Sales — EMEA", "sales-emea"), ("  Équipe  Café ", "equipe-cafe"), ("a" * 80, "a" * 63)],
    ids=["plain", "punctuation", "accents", "truncated"],
)
def test_a_slug_is_derived_from_the_name(name: str, slug: str) -> None:
    assert slug_from(name) == slug
    assert check_slug(slug) == slug


@pytest.mark.parametrize("name", ["!!!", "日本"], ids=["punctuation-only", "non-latin"])
def test_a_name_with_nothing_sluggable_asks_for_a_slug(name: str) -> None:
    with pytest.raises(ValidationError) as error:
        slug_from(name)
    assert error.value.field == "slug"


@pytest.mark.parametrize("slug", ["", "-a", "a-", "A", "a_b", "a" * 64, None], ids=str)
def test_bad_slugs_are_refused(slug: object) -> None:
    with pytest.raises(ValidationError):
        check_slug(slug)


@pytest.mark.parametrize("name", ["", "   ", "x" * 256, "tab\there", 3], ids=str)
def test_bad_names_are_refused(name: object) -> None:
    with pytest.raises(ValidationError):
        check_name(name)


def test_names_are_trimmed_and_descriptions_bounded() -> None:
    assert check_name("  Sales ") == "Sales"
    assert check_description(None) is None
    with pytest.raises(ValidationError):
        check_description("x" * 2001)


def test_roles_rank_admin_over_member_over_viewer() -> None:
    assert check_role("viewer") == "viewer"
    with pytest.raises(ValidationError):
        check_role("owner")
    assert role_at_least("admin", "member") and role_at_least("member", "member")
    assert not role_at_least("viewer", "member") and not role_at_least(None, "viewer")
