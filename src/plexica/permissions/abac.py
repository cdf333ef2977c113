"""ABAC evaluation: policies compiled once into predicates over an attribute tree.

Semantics, shared with the SQL filter (:mod:`plexica.permissions.filtering`):

* A leaf over a missing operand is false (see :mod:`plexica.permissions.conditions`).
* Values compare within their kind only (string, number, boolean): ``1`` never equals ``"1"``
  or ``true``; ``not_equals`` is the negation of ``equals`` when both operands are present.
* ``in`` needs a list on the right; ``contains`` looks for a substring in a string or an item in
  a list; ``starts_with`` works on strings.
* ``gt``/``gte``/``lt``/``lte`` order two numbers or two strings (by code point). Ordering
  operands of other or mixed kinds is an *evaluation error*: a policy that meets one, wherever the
  comparison sits in its tree, makes the whole decision deny.

Nothing here evaluates strings as code; the pure module does no IO.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeAlias, final

import attrs

from plexica.permissions.conditions import (
    MISSING,
    ORDERING,
    AllOf,
    Leaf,
    Node,
    Not,
    Ref,
    kind_of,
    leaves_of,
    resolve,
    validate_policy,
)
from plexica_sdk.errors import ValidationError
from plexica_sdk.types import Policy

__all__ = ["CompiledPolicy", "apply_operator", "compile_node", "compile_policy", "orderable"]

# ------------------------------------------------------------- compilation

Attributes: TypeAlias = Mapping[str, Any]
Predicate: TypeAlias = Callable[[Attributes], bool]


def _equals(a: Any, b: Any) -> bool:
    kind = kind_of(a)
    return kind in ("str", "num", "bool") and kind == kind_of(b) and a == b


def _in(a: Any, b: Any) -> bool:
    return kind_of(b) == "list" and any(_equals(a, item) for item in b)


def _contains(a: Any, b: Any) -> bool:
    kind = kind_of(a)
    if kind == "str":
        return kind_of(b) == "str" and b in a
    return kind == "list" and any(_equals(item, b) for item in a)


def _starts_with(a: Any, b: Any) -> bool:
    return kind_of(a) == "str" and kind_of(b) == "str" and a.startswith(b)


def _orderable(a: Any, b: Any) -> bool:
    kind = kind_of(a)
    return kind in ("str", "num") and kind == kind_of(b)


_COMPARE: Final[Mapping[str, Callable[[Any, Any], bool]]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
_BINARY: Final[Mapping[str, Callable[[Any, Any], bool]]] = {
    "equals": _equals,
    "not_equals": lambda a, b: not _equals(a, b),
    "in": _in,
    "contains": _contains,
    "starts_with": _starts_with,
}


def apply_operator(op: str, a: Any, b: Any) -> bool:
    """A binary leaf's truth for two present operands (an ordering error reads as false here)."""
    if op in ORDERING:
        return _orderable(a, b) and _COMPARE[op](a, b)
    return _BINARY[op](a, b)


def orderable(a: Any, b: Any) -> bool:
    """Whether an ordering comparison of ``a`` and ``b`` is defined (else it is an evaluation error)."""
    return _orderable(a, b)


def _operand(value: Any) -> Callable[[Attributes], Any]:
    if isinstance(value, Ref):
        path = value.path
        return lambda attributes: resolve(attributes, path)
    return lambda attributes: value


def _compile_leaf(leaf: Leaf) -> Predicate:
    path = leaf.attribute
    if leaf.operator == "exists":
        return lambda attributes: resolve(attributes, path) is not MISSING
    right = _operand(leaf.value)
    if leaf.operator in ORDERING:
        compare = _COMPARE[leaf.operator]

        def ordered(attributes: Attributes) -> bool:
            a, b = resolve(attributes, path), right(attributes)
            return a is not MISSING and b is not MISSING and _orderable(a, b) and compare(a, b)

        return ordered
    test = _BINARY[leaf.operator]

    def binary(attributes: Attributes) -> bool:
        a = resolve(attributes, path)
        if a is MISSING:
            return False
        b = right(attributes)
        return b is not MISSING and test(a, b)

    return binary


def compile_node(node: Node) -> Predicate:
    """A predicate over an attribute tree; ordering errors read as false here (see ``errors``)."""
    if isinstance(node, Leaf):
        return _compile_leaf(node)
    if isinstance(node, Not):
        inner = compile_node(node.child)
        return lambda attributes: not inner(attributes)
    children = tuple(compile_node(child) for child in node.children)
    if isinstance(node, AllOf):
        return lambda attributes: all(child(attributes) for child in children)
    return lambda attributes: any(child(attributes) for child in children)


def _compile_errors(node: Node | None) -> Predicate:
    checks = []
    for leaf in leaves_of(node):
        if leaf.operator in ORDERING:
            left, right = _operand(Ref(leaf.attribute)), _operand(leaf.value)
            checks.append((left, right))

    def errors(attributes: Attributes) -> bool:
        for left, right in checks:
            a, b = left(attributes), right(attributes)
            if a is not MISSING and b is not MISSING and not _orderable(a, b):
                return True
        return False

    return errors


def _always(attributes: Attributes) -> bool:
    return True


def _never(attributes: Attributes) -> bool:
    return False


@final
@attrs.frozen(kw_only=True)
class CompiledPolicy:
    """A validated policy with its condition compiled once.

    Attributes:
        policy: the policy as data.
        node: the parsed condition (None: the policy always applies).
        source: ``tenant``, ``plugin:<name>``, or ``invalid`` for a stored policy that no longer
            validates (it then errs on every check of its target, so its target is denied).
        matches: the condition as a predicate over the attribute tree.
        errors: whether the attribute tree makes an ordering comparison of the policy err.
        uses_resource: whether any leaf reads ``resource.*`` (if not, the outcome is the same
            for every resource of one subject).
    """

    policy: Policy
    node: Node | None
    source: str = "tenant"
    matches: Predicate = attrs.field(eq=False, repr=False)
    errors: Predicate = attrs.field(eq=False, repr=False)
    uses_resource: bool = False

    @property
    def id(self) -> str:
        return self.policy.id

    @property
    def deny(self) -> bool:
        return self.policy.effect == "deny"

    @property
    def broken(self) -> bool:
        """A stored policy that no longer validates: it errs on every check of its target."""
        return self.source == "invalid"


def compile_policy(policy: Policy, *, source: str = "tenant", validate: bool = True) -> CompiledPolicy:
    """Validate and compile a policy. With ``validate=False`` a bad policy compiles to one that errs.

    Raises:
        ValidationError: the policy is invalid (only when ``validate`` is true).
    """
    try:
        node = validate_policy(policy)
    except ValidationError:
        if validate:
            raise
        return CompiledPolicy(policy=policy, node=None, source="invalid", matches=_never, errors=_always)
    leaves = leaves_of(node)
    uses_resource = any(
        leaf.attribute[0] == "resource" or (isinstance(leaf.value, Ref) and leaf.value.path[0] == "resource")
        for leaf in leaves
    )
    return CompiledPolicy(
        policy=policy,
        node=node,
        source=source,
        matches=_always if node is None else compile_node(node),
        errors=_compile_errors(node),
        uses_resource=uses_resource,
    )
