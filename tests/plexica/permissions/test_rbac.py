"""Role-based checks: permission patterns, and role tables whose decisions name the deciding role."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plexica.permissions.rbac import (
    ADMIN_ROLE,
    MEMBER_ROLE,
    PatternSet,
    RoleTable,
    is_permission_key,
    is_permission_pattern,
    matches,
)
from plexica_sdk.types import RoleDef

MATCHING = {
    "exact": ("notes:note:read", "notes:note:read"),
    "star-grants-everything": ("*", "notes:note:read"),
    "plugin-star": ("notes:*", "notes:note:read"),
    "resource-star": ("notes:note:*", "notes:note:read"),
    "star-swallows-the-rest": ("notes:*:read", "notes:task:delete"),
}

NOT_MATCHING = {
    "other-action": ("notes:note:read", "notes:note:write"),
    "other-plugin": ("notes:*", "tasks:task:read"),
    "plugin-prefix-is-not-a-segment": ("notes:*", "notes-pro:note:read"),
    "other-resource": ("notes:note:*", "notes:task:read"),
    "shorter-pattern": ("notes:note", "notes:note:read"),
    "longer-pattern": ("notes:note:read", "notes:note"),
    "star-is-not-a-glob-inside-a-segment": ("notes:no*:read", "notes:note:read"),
    "key-wildcard-is-not-a-grant": ("notes:note:read", "notes:*"),
}


@pytest.mark.parametrize(("pattern", "key"), MATCHING.values(), ids=MATCHING.keys())
def test_pattern_grants_key(pattern: str, key: str) -> None:
    assert matches(pattern, key)


@pytest.mark.parametrize(("pattern", "key"), NOT_MATCHING.values(), ids=NOT_MATCHING.keys())
def test_pattern_does_not_grant_key(pattern: str, key: str) -> None:
    assert not matches(pattern, key)


def test_tenant_admin_holds_every_permission_even_without_any_role_definitions() -> None:
    decision = RoleTable([]).check([ADMIN_ROLE], "billing:invoice:delete")
    assert decision.allowed
    assert decision.decided_by == f"role:{ADMIN_ROLE}"
    assert "*" in decision.reason


def test_a_role_grants_its_patterns_and_the_decision_names_it() -> None:
    table = RoleTable([RoleDef(name="editor", permissions=["notes:note:*"])])
    decision = table.check(["editor"], "notes:note:write")
    assert decision.allowed
    assert decision.decided_by == "role:editor"
    assert decision.reason == "role editor grants notes:note:*"


def test_a_permission_no_role_grants_is_denied_without_a_deciding_role() -> None:
    table = RoleTable([RoleDef(name=MEMBER_ROLE, permissions=["notes:note:read"])])
    decision = table.check([MEMBER_ROLE, "unknown-role"], "notes:note:delete")
    assert not decision.allowed
    assert decision.decided_by is None


def test_no_roles_means_no_permissions() -> None:
    assert not RoleTable([RoleDef(name=MEMBER_ROLE, permissions=["*"])]).check([], "notes:note:read").allowed


def test_grants_of_the_same_role_from_several_plugins_are_merged() -> None:
    table = RoleTable(
        [
            RoleDef(name=MEMBER_ROLE, permissions=["notes:note:read"]),
            RoleDef(name=MEMBER_ROLE, permissions=["tasks:task:read"]),
        ]
    )
    assert table.check([MEMBER_ROLE], "notes:note:read").allowed
    assert table.check([MEMBER_ROLE], "tasks:task:read").allowed
    assert table.grants[MEMBER_ROLE] == frozenset({"notes:note:read", "tasks:task:read"})


def test_plugins_adding_to_tenant_admin_keep_its_grant_of_everything() -> None:
    table = RoleTable([RoleDef(name=ADMIN_ROLE, permissions=["core:*"])])
    assert table.grants[ADMIN_ROLE] == frozenset({"*", "core:*"})
    assert table.check([ADMIN_ROLE], "notes:note:read").allowed


def test_the_deciding_role_is_chosen_deterministically_when_several_grant() -> None:
    table = RoleTable(
        [RoleDef(name="writer", permissions=["notes:*"]), RoleDef(name="editor", permissions=["notes:note:*"])]
    )
    for roles in (["writer", "editor"], ["editor", "writer"], ("writer", "editor", "writer")):
        assert table.check(roles, "notes:note:read").decided_by == "role:editor"


# --------------------------------------------------------------- key syntax

PATTERNS = {
    "key": ("notes:note:read", True, True),
    "everything": ("*", False, True),
    "plugin-wide": ("notes:*", False, True),
    "resource-wide": ("notes:note:*", False, True),
    "two-segments": ("notes:note", False, False),
    "four-segments": ("notes:note:read:x", False, False),
    "uppercase": ("Notes:note:read", False, False),
    "empty": ("", False, False),
    "glob-inside-a-segment": ("notes:no*:read", False, False),
    "key-with-trailing-newline": ("notes:note:read\n", False, False),
    "pattern-with-trailing-newline": ("notes:*\n", False, False),
}


@pytest.mark.parametrize(("text", "is_key", "is_pattern"), PATTERNS.values(), ids=PATTERNS.keys())
def test_keys_and_grantable_patterns_are_told_apart(text: str, is_key: bool, is_pattern: bool) -> None:
    assert is_permission_key(text) is is_key
    assert is_permission_pattern(text) is is_pattern


# ---------------------------------------------------------------- PatternSet

segments = st.sampled_from(["notes", "tasks", "note", "read", "*"])
patterns = st.lists(segments, min_size=1, max_size=4).map(":".join)
keys = st.lists(segments.filter(lambda s: s != "*"), min_size=1, max_size=4).map(":".join)
grant_sets = st.lists(st.tuples(st.sampled_from(["editor", "member", "viewer"]), patterns), max_size=8)


def first_grant_by_walking(grants: list[tuple[str, str]], key: str) -> tuple[str, str] | None:
    """The reference answer: walk sorted (role, pattern) pairs and test each with ``matches``."""
    return next((pair for pair in sorted(set(grants)) if matches(pair[1], key)), None)


@settings(max_examples=150, deadline=None, database=None)
@given(grant_sets, st.lists(keys, min_size=1, max_size=5))
def test_pattern_set_finds_what_a_sorted_walk_with_matches_finds(
    grants: list[tuple[str, str]], asked: list[str]
) -> None:
    pattern_set = PatternSet(grants)
    for key in asked * 2:  # the second round is answered from the memo
        assert pattern_set.find(key) == first_grant_by_walking(grants, key)


def test_pattern_set_prefers_the_smallest_role_then_pattern() -> None:
    pattern_set = PatternSet([("viewer", "*"), ("editor", "notes:note:*"), ("editor", "notes:*")])
    assert pattern_set.find("notes:note:read") == ("editor", "notes:*")
    assert pattern_set.find("tasks:task:read") == ("viewer", "*")


def test_an_empty_pattern_set_grants_nothing_and_is_false() -> None:
    assert not PatternSet([])
    assert PatternSet([]).find("notes:note:read") is None
    assert PatternSet([("member", "notes:note:read")])
