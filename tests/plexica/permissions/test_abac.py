"""Policy evaluation: operators, kinds, missing attributes and evaluation errors."""

from __future__ import annotations

from typing import Any

import pytest

from plexica.permissions.abac import compile_policy
from plexica_sdk.errors import ValidationError
from plexica_sdk.types import Policy


def holds(condition: dict[str, Any], **attributes: Any) -> bool:
    policy = compile_policy(Policy(id="p", effect="allow", target="*", condition=condition))
    assert not policy.errors(attributes)
    return policy.matches(attributes)


def errs(condition: dict[str, Any], **attributes: Any) -> bool:
    return compile_policy(Policy(id="p", effect="allow", target="*", condition=condition)).errors(attributes)


def leaf(attribute: str, operator: str, value: Any = None) -> dict[str, Any]:
    found = {"attribute": attribute, "operator": operator}
    return found if operator == "exists" else {**found, "value": value}


CASES = {
    "equals": (leaf("resource.owner", "equals", "ann"), {"resource": {"owner": "ann"}}, True),
    "equals-other": (leaf("resource.owner", "equals", "ann"), {"resource": {"owner": "bob"}}, False),
    "equals-is-kind-strict": (leaf("resource.n", "equals", 1), {"resource": {"n": True}}, False),
    "equals-string-vs-number": (leaf("resource.n", "equals", "1"), {"resource": {"n": 1}}, False),
    "equals-int-float": (leaf("resource.n", "equals", 2), {"resource": {"n": 2.0}}, True),
    "not-equals": (leaf("resource.owner", "not_equals", "ann"), {"resource": {"owner": "bob"}}, True),
    "not-equals-other-kind": (leaf("resource.n", "not_equals", "1"), {"resource": {"n": 1}}, True),
    "not-equals-missing": (leaf("resource.owner", "not_equals", "ann"), {"resource": {}}, False),
    "in": (leaf("resource.state", "in", ["open", "new"]), {"resource": {"state": "new"}}, True),
    "in-not": (leaf("resource.state", "in", ["open", "new"]), {"resource": {"state": "done"}}, False),
    "in-ref-list": (
        leaf("resource.team", "in", {"ref": "subject.teams"}),
        {"resource": {"team": "t2"}, "subject": {"teams": ["t1", "t2"]}},
        True,
    ),
    "contains-substring": (leaf("resource.title", "contains", "plan"), {"resource": {"title": "a plan"}}, True),
    "contains-is-case-sensitive": (
        leaf("resource.title", "contains", "Plan"),
        {"resource": {"title": "a plan"}},
        False,
    ),
    "contains-list": (leaf("subject.roles", "contains", "editor"), {"subject": {"roles": ["editor"]}}, True),
    "contains-number-in-string": (leaf("resource.title", "contains", 1), {"resource": {"title": "1"}}, False),
    "starts-with": (leaf("action", "starts_with", "notes:"), {"action": "notes:note:read"}, True),
    "starts-with-number": (leaf("resource.n", "starts_with", "1"), {"resource": {"n": 12}}, False),
    "gt-numbers": (leaf("resource.size", "gt", 10), {"resource": {"size": 11}}, True),
    "lte-numbers": (leaf("resource.size", "lte", 10), {"resource": {"size": 11}}, False),
    "gte-strings-by-code-point": (
        leaf("environment.time", "gte", "2026-01-01"),
        {"environment": {"time": "2026-06"}},
        True,
    ),
    "lt-uppercase-first": (leaf("resource.name", "lt", "a"), {"resource": {"name": "Z"}}, True),
    "exists": (leaf("resource.owner", "exists"), {"resource": {"owner": "x"}}, True),
    "exists-null": (leaf("resource.owner", "exists"), {"resource": {"owner": None}}, False),
    "exists-non-json": (leaf("resource.when", "exists"), {"resource": {"when": object()}}, False),
    "nested-path": (leaf("resource.meta.level", "equals", 3), {"resource": {"meta": {"level": 3}}}, True),
    "path-through-a-scalar": (leaf("resource.meta.level", "exists"), {"resource": {"meta": 3}}, False),
    "ref-equals": (
        leaf("resource.owner", "equals", {"ref": "subject.id"}),
        {"resource": {"owner": "ann"}, "subject": {"id": "ann"}},
        True,
    ),
    "ref-missing": (leaf("resource.owner", "not_equals", {"ref": "subject.nope"}), {"resource": {"owner": "a"}}, False),
    "not-of-missing": ({"not": leaf("resource.owner", "equals", "ann")}, {"resource": {}}, True),
    "all": (
        {"all": [leaf("action", "exists"), leaf("resource.a", "equals", 1)]},
        {"action": "x", "resource": {"a": 1}},
        True,
    ),
    "any": ({"any": [leaf("resource.a", "equals", 2), leaf("resource.a", "equals", 1)]}, {"resource": {"a": 1}}, True),
}


@pytest.mark.parametrize(("condition", "attributes", "expected"), CASES.values(), ids=CASES.keys())
def test_leaf_semantics(condition: dict[str, Any], attributes: dict[str, Any], expected: bool) -> None:
    assert holds(condition, **attributes) is expected


ERRORS = {
    "string-vs-number": (leaf("resource.size", "gt", 3), {"resource": {"size": "4"}}),
    "boolean": (leaf("resource.flag", "lt", 3), {"resource": {"flag": True}}),
    "list": (leaf("subject.roles", "gte", "a"), {"subject": {"roles": ["a"]}}),
    "hidden-in-an-any-that-already-holds": (
        {"any": [leaf("action", "exists"), leaf("resource.size", "gt", 3)]},
        {"action": "x", "resource": {"size": "big"}},
    ),
}


@pytest.mark.parametrize(("condition", "attributes"), ERRORS.values(), ids=ERRORS.keys())
def test_ordering_across_kinds_is_an_evaluation_error_wherever_it_sits(
    condition: dict[str, Any], attributes: dict[str, Any]
) -> None:
    assert errs(condition, **attributes)


def test_ordering_with_a_missing_operand_is_false_not_an_error() -> None:
    assert not errs(leaf("resource.size", "gt", 3), resource={})
    assert not holds(leaf("resource.size", "gt", 3), resource={})


def test_a_policy_without_condition_always_holds() -> None:
    policy = compile_policy(Policy(id="p", effect="deny", target="*"))
    assert policy.matches({}) and not policy.errors({}) and not policy.uses_resource


def test_uses_resource_notices_references_too() -> None:
    by_ref = Policy(id="p", effect="allow", target="*", condition=leaf("subject.id", "equals", {"ref": "resource.o"}))
    assert compile_policy(by_ref).uses_resource
    by_subject = Policy(id="p", effect="allow", target="*", condition=leaf("subject.id", "equals", "x"))
    assert not compile_policy(by_subject).uses_resource


def test_an_invalid_stored_policy_compiles_to_one_that_always_errs() -> None:
    bad = Policy(id="p", effect="allow", target="*", condition={"nope": 1})
    with pytest.raises(ValidationError):
        compile_policy(bad)
    compiled = compile_policy(bad, validate=False)
    assert compiled.broken and compiled.errors({}) and not compiled.matches({})


def test_values_are_never_evaluated_as_code() -> None:
    sneaky = leaf("resource.owner", "equals", "__import__('os').system('false')")
    assert not holds(sneaky, resource={"owner": "ann"})
