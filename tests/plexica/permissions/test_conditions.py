"""The condition language: what validates, and errors that name the offending path."""

from __future__ import annotations

import json
from typing import Any

import pytest

from plexica.permissions.conditions import (
    MAX_DEPTH,
    MAX_LEAVES,
    MAX_POLICY_BYTES,
    AllOf,
    Leaf,
    Not,
    Ref,
    parse_condition,
    policy_from_json,
    policy_to_json,
    validate_policy,
)
from plexica_sdk.errors import ValidationError
from plexica_sdk.types import Policy


def leaf(attribute: str = "resource.owner", operator: str = "equals", value: Any = "x") -> dict[str, Any]:
    return {"attribute": attribute, "operator": operator, "value": value}


def nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = leaf()
    for _ in range(depth - 1):
        node = {"all": [node]}
    return node


def test_a_tree_parses_into_nodes_with_references() -> None:
    node = parse_condition(
        {"all": [leaf(value={"ref": "subject.id"}), {"not": leaf("action", "starts_with", "notes:")}]}
    )
    assert isinstance(node, AllOf)
    first, second = node.children
    assert first == Leaf(("resource", "owner"), "equals", Ref(("subject", "id")), "condition.all[0]")
    assert isinstance(second, Not) and isinstance(second.child, Leaf)


BAD = {
    "not-an-object": ([], "condition"),
    "unknown-root": (leaf("user.id"), "condition.attribute"),
    "action-has-no-path": (leaf("action.name"), "condition.attribute"),
    "subject-needs-a-path": (leaf("subject"), "condition.attribute"),
    "bad-segment": (leaf("resource.owner-id"), "condition.attribute"),
    "unknown-operator": ({"all": [leaf(), leaf(operator="matches")]}, "condition.all[1].operator"),
    "unknown-key": ({**leaf(), "negate": True}, "condition"),
    "combinator-with-company": ({"all": [leaf()], "any": [leaf()]}, "condition"),
    "empty-any": ({"any": []}, "condition.any"),
    "in-needs-a-list": (leaf(operator="in", value="x"), "condition.value"),
    "in-list-of-scalars": (leaf(operator="in", value=["a", {"b": 1}]), "condition.value[1]"),
    "nan": (leaf(value=float("nan")), "condition.value"),
    "object-value-is-a-ref": (leaf(value={"attribute": "subject.id"}), "condition.value"),
    "bad-ref": (leaf(value={"ref": "nowhere.x"}), "condition.value.ref"),
    "exists-takes-no-value": (leaf(operator="exists", value=1), "condition.value"),
    "gt-on-boolean": (leaf(operator="gt", value=True), "condition.value"),
    "starts-with-a-number": (leaf(operator="starts_with", value=3), "condition.value"),
    "deep-path": (
        {"any": [leaf(), {"not": {"all": [leaf(), leaf(operator="?")]}}]},
        "condition.any[1].not.all[1].operator",
    ),
}


@pytest.mark.parametrize(("condition", "field"), BAD.values(), ids=BAD.keys())
def test_invalid_conditions_name_the_offending_path(condition: Any, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_condition(condition)
    assert caught.value.field == field


def test_depth_limit_counts_the_leaf_level() -> None:
    parse_condition(nested(MAX_DEPTH))
    with pytest.raises(ValidationError) as caught:
        parse_condition(nested(MAX_DEPTH + 1))
    assert caught.value.field == "condition" + ".all[0]" * MAX_DEPTH


def test_leaf_limit_names_the_first_leaf_too_many() -> None:
    parse_condition({"any": [leaf()] * MAX_LEAVES})
    with pytest.raises(ValidationError) as caught:
        parse_condition({"any": [leaf()] * (MAX_LEAVES + 1)})
    assert caught.value.field == f"condition.any[{MAX_LEAVES}]"


def test_size_limit_is_on_the_condition_json() -> None:
    big = leaf(operator="in", value=["x" * 700] * 100)
    assert len(json.dumps(big)) > MAX_POLICY_BYTES
    with pytest.raises(ValidationError) as caught:
        validate_policy(Policy(id="big", effect="deny", target="*", condition=big))
    assert caught.value.field == "condition"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"id": "Bad Id"}, "id"),
        ({"effect": "maybe"}, "effect"),
        ({"target": "notes"}, "target"),
        ({"description": "x" * 1001}, "description"),
    ],
    ids=["id", "effect", "target", "description"],
)
def test_policy_fields_are_checked(changes: dict[str, Any], field: str) -> None:
    data = {"id": "p", "effect": "allow", "target": "notes:*", "condition": None, **changes}
    with pytest.raises(ValidationError) as caught:
        validate_policy(Policy(**data))
    assert caught.value.field == field


def test_policies_round_trip_through_json() -> None:
    data = {"id": "p", "effect": "deny", "target": "notes:note:*", "condition": leaf(), "description": "d"}
    assert policy_to_json(policy_from_json(data)) == data


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ([], "body"),
        ({"id": "p", "effect": "allow"}, "target"),
        ({"id": "p", "effect": "allow", "target": "*", "extra": 1}, "extra"),
        ({"id": "p", "effect": "allow", "target": "*", "condition": [1]}, "condition"),
        ({"id": 3, "effect": "allow", "target": "*"}, "id"),
    ],
    ids=["not-object", "missing", "unknown", "condition-type", "id-type"],
)
def test_malformed_policy_json_names_the_field(data: Any, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        policy_from_json(data)
    assert caught.value.field == field
