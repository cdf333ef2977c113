"""The condition language of ABAC policies: its tree, its validation and its JSON form.

A condition is ``{"all": [...]}``, ``{"any": [...]}``, ``{"not": {...}}`` or a leaf
``{"attribute": "resource.owner_id", "operator": "equals", "value": {"ref": "subject.id"}}``.
A leaf's value is a JSON literal or a reference ``{"ref": "<attribute>"}`` to another attribute.
Attributes are dotted paths under ``subject``, ``resource``, ``action``, ``environment`` and
``tenant``. Limits: :data:`MAX_DEPTH` levels (a leaf counts as one), :data:`MAX_LEAVES` leaves,
:data:`MAX_POLICY_BYTES` of JSON; a violation is a ``ValidationError`` naming the path.

Attribute values are JSON: a missing attribute, ``null``, or a value that is not a string,
number, boolean, list or object counts as missing (:data:`MISSING`). Pure: no IO.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, TypeAlias

import attrs

from plexica.permissions.rbac import is_permission_pattern
from plexica_sdk.errors import ValidationError
from plexica_sdk.types import Policy

__all__ = [
    "ATTRIBUTE_ROOTS",
    "MAX_DEPTH",
    "MAX_IN_VALUES",
    "MAX_LEAVES",
    "MAX_POLICY_BYTES",
    "MISSING",
    "OPERATORS",
    "ORDERING",
    "POLICY_ID_RE",
    "AllOf",
    "AnyOf",
    "Kind",
    "Leaf",
    "Node",
    "Not",
    "Ref",
    "kind_of",
    "leaves_of",
    "parse_condition",
    "policy_from_json",
    "policy_to_json",
    "resolve",
    "validate_policy",
]

MAX_DEPTH: Final = 5
MAX_LEAVES: Final = 50
MAX_POLICY_BYTES: Final = 64 * 1024
MAX_IN_VALUES: Final = 100
ATTRIBUTE_ROOTS: Final = frozenset({"subject", "resource", "action", "environment", "tenant"})
ORDERING: Final = frozenset({"gt", "gte", "lt", "lte"})
OPERATORS: Final = frozenset({"equals", "not_equals", "in", "contains", "starts_with", "exists", *ORDERING})
#: A tenant's policy ids; a plugin's are stored as ``{plugin}:{id}``.
POLICY_ID_RE: Final = re.compile(r"^([a-z][a-z0-9-]{1,62}:)?[a-z0-9][a-z0-9_.-]{0,63}$")
_SEGMENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

Kind: TypeAlias = Literal["str", "num", "bool", "list", "map"] | None


class _Missing:
    """The value of an attribute that is not there."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


def kind_of(value: Any) -> Kind:
    """The kind of a JSON value; None for null and for anything that is not JSON."""
    cls = type(value)
    if cls is str:
        return "str"
    if cls is bool:
        return "bool"
    if cls is int or cls is float:
        return "num"
    if cls is list or cls is tuple:
        return "list"
    if isinstance(value, Mapping):
        return "map"
    return None


def resolve(root: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The attribute at dotted ``path`` in ``root``, or :data:`MISSING`."""
    value: Any = root
    for segment in path:
        if not isinstance(value, Mapping):
            return MISSING
        value = value.get(segment, MISSING)
        if value is MISSING:
            return MISSING
    return MISSING if kind_of(value) is None else value


# ------------------------------------------------------------------ the tree


@attrs.frozen
class Ref:
    """A leaf value that names another attribute."""

    path: tuple[str, ...]


@attrs.frozen
class Leaf:
    """``attribute operator value``; ``where`` is its path in the policy, for messages."""

    attribute: tuple[str, ...]
    operator: str
    value: Any
    where: str


@attrs.frozen
class AllOf:
    children: tuple[Node, ...]


@attrs.frozen
class AnyOf:
    children: tuple[Node, ...]


@attrs.frozen
class Not:
    child: Node


Node: TypeAlias = Leaf | AllOf | AnyOf | Not


def _attribute(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, str):
        raise ValidationError("an attribute must be a dotted name such as resource.owner_id", field=where)
    parts = tuple(value.split("."))
    if parts[0] not in ATTRIBUTE_ROOTS:
        roots = ", ".join(sorted(ATTRIBUTE_ROOTS))
        raise ValidationError(f"attribute {value[:80]!r} must start with one of {roots}", field=where)
    if (parts[0] == "action") != (len(parts) == 1) or len(parts) > 8:
        raise ValidationError(f"attribute {value[:80]!r} has the wrong number of segments", field=where)
    if not all(_SEGMENT_RE.fullmatch(part) for part in parts[1:]):
        raise ValidationError(f"attribute {value[:80]!r} has an invalid segment", field=where)
    return parts


def _scalar(value: Any) -> bool:
    return kind_of(value) in ("str", "num", "bool") and not (type(value) is float and not math.isfinite(value))


def _leaf(data: Mapping[str, Any], where: str) -> Leaf:
    extra = set(data) - {"attribute", "operator", "value"}
    if extra:
        raise ValidationError(f"unknown key {sorted(extra)[0]!r} in a condition", field=where)
    attribute = _attribute(data.get("attribute"), f"{where}.attribute")
    op = data.get("operator")
    if op not in OPERATORS:
        raise ValidationError(f"operator must be one of {', '.join(sorted(OPERATORS))}", field=f"{where}.operator")
    raw, at = data.get("value"), f"{where}.value"
    if op == "exists":
        if raw is not None:
            raise ValidationError("exists takes no value", field=at)
        return Leaf(attribute, op, None, where)
    if isinstance(raw, Mapping):
        if set(raw) != {"ref"}:
            raise ValidationError('an object value must be a reference {"ref": "<attribute>"}', field=at)
        return Leaf(attribute, op, Ref(_attribute(raw["ref"], f"{at}.ref")), where)
    if op == "in":
        if not isinstance(raw, list) or not raw or len(raw) > MAX_IN_VALUES:
            raise ValidationError(f"in takes a list of 1 to {MAX_IN_VALUES} values", field=at)
        for index, item in enumerate(raw):
            if not _scalar(item):
                raise ValidationError("list values must be strings, numbers or booleans", field=f"{at}[{index}]")
        return Leaf(attribute, op, tuple(raw), where)
    if not _scalar(raw):
        raise ValidationError("value must be a string, a finite number, a boolean or a reference", field=at)
    if op in ("starts_with",) and not isinstance(raw, str):
        raise ValidationError("starts_with takes a string", field=at)
    if op in ORDERING and isinstance(raw, bool):
        raise ValidationError(f"{op} takes a number or a string", field=at)
    return Leaf(attribute, op, raw, where)


def parse_condition(data: Any, where: str = "condition") -> Node:
    """Validate a JSON condition into a tree.

    Raises:
        ValidationError: ``field`` is the dotted path of the first offending part
            (``condition.all[2].operator``), including the depth and leaf-count limits.
    """
    leaves = 0

    def walk(node: Any, at: str, depth: int) -> Node:
        nonlocal leaves
        if depth > MAX_DEPTH:
            raise ValidationError(f"conditions nest at most {MAX_DEPTH} levels deep", field=at)
        if not isinstance(node, Mapping):
            raise ValidationError("a condition must be an object", field=at)
        combinators = [key for key in ("all", "any", "not") if key in node]
        if not combinators:
            leaves += 1
            if leaves > MAX_LEAVES:
                raise ValidationError(f"a policy has at most {MAX_LEAVES} conditions", field=at)
            return _leaf(node, at)
        if len(node) != 1:
            raise ValidationError("all, any and not stand alone in their object", field=at)
        key = combinators[0]
        if key == "not":
            return Not(walk(node["not"], f"{at}.not", depth + 1))
        children = node[key]
        if not isinstance(children, list) or not children:
            raise ValidationError(f"{key} takes a non-empty list of conditions", field=f"{at}.{key}")
        parsed = tuple(walk(child, f"{at}.{key}[{i}]", depth + 1) for i, child in enumerate(children))
        return AllOf(parsed) if key == "all" else AnyOf(parsed)

    return walk(data, where, 1)


def validate_policy(policy: Policy, *, where: str = "") -> Node | None:
    """Check a policy's fields, size and condition; return its parsed condition (None: always).

    Raises:
        ValidationError: naming the offending field (``id``, ``target``, ``condition.any[0]``...).
    """
    if not isinstance(policy.id, str) or not POLICY_ID_RE.fullmatch(policy.id):
        raise ValidationError("id must be 1-64 lowercase letters, digits, '.', '_' or '-'", field=f"{where}id")
    if policy.effect not in ("allow", "deny"):
        raise ValidationError("effect must be allow or deny", field=f"{where}effect")
    if not isinstance(policy.target, str) or not is_permission_pattern(policy.target):
        raise ValidationError("target must be a permission pattern such as notes:note:*", field=f"{where}target")
    if not isinstance(policy.description, str) or len(policy.description) > 1000:
        raise ValidationError("description must be a string of at most 1000 characters", field=f"{where}description")
    try:
        size = len(json.dumps(policy.condition, separators=(",", ":"), allow_nan=False).encode())
    except (TypeError, ValueError):
        raise ValidationError("condition must be JSON", field=f"{where}condition") from None
    if size > MAX_POLICY_BYTES:
        raise ValidationError(f"condition is larger than {MAX_POLICY_BYTES} bytes", field=f"{where}condition")
    if policy.condition is None:
        return None
    return parse_condition(policy.condition, f"{where}condition")


def leaves_of(node: Node | None) -> list[Leaf]:
    """Every leaf of a tree, left to right."""
    if node is None:
        return []
    if isinstance(node, Leaf):
        return [node]
    if isinstance(node, Not):
        return leaves_of(node.child)
    return [leaf for child in node.children for leaf in leaves_of(child)]


def policy_from_json(data: Any, *, where: str = "") -> Policy:
    """Build a :class:`Policy` from a JSON object, naming the offending field when it is malformed.

    Raises:
        ValidationError: a field is missing, unknown or of the wrong type.
    """
    if not isinstance(data, Mapping):
        raise ValidationError("a policy must be a JSON object", field=where.rstrip(".") or "body")
    allowed = {"id", "effect", "target", "condition", "description"}
    for key in data:
        if key not in allowed:
            raise ValidationError(f"unknown field {str(key)[:40]!r}", field=f"{where}{key}")
    for key in ("id", "effect", "target"):
        if not isinstance(data.get(key), str):
            raise ValidationError(f"{key} is required and must be a string", field=f"{where}{key}")
    condition = data.get("condition")
    if condition is not None and not isinstance(condition, Mapping):
        raise ValidationError("condition must be an object or null", field=f"{where}condition")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ValidationError("description must be a string", field=f"{where}description")
    return Policy(
        id=data["id"], effect=data["effect"], target=data["target"], condition=condition, description=description
    )


def policy_to_json(policy: Policy) -> dict[str, Any]:
    """The JSON form of a policy (the inverse of :func:`policy_from_json`)."""
    return {
        "id": policy.id,
        "effect": policy.effect,
        "target": policy.target,
        "condition": _plain(policy.condition),
        "description": policy.description,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(v) for v in value]
    return value
