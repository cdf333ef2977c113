"""Data filtering: the decision rule of :mod:`plexica.permissions.decision` as a SQL ``WHERE``.

``authorized(select(notes), "notes:note:read", subject)`` keeps exactly the rows for which
``subject.authorize("notes:note:read", resource_of(row))`` allows. Subject, tenant, action and
environment attributes are known when the query is built and fold into constants; ``resource.X``
becomes column ``X`` when the table has one of a supported type (string, integer, float,
boolean), and is missing otherwise, exactly as a non-JSON value is missing in a Python check.

Every leaf compiles to a two-valued expression (``col IS NOT NULL AND ...``) so that ``NOT``
keeps its meaning under SQL's three-valued logic. String ordering compares code points on both
dialects (``COLLATE "C"`` on PostgreSQL), as Python does. Builds expressions only: no IO.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement, FromClause, Select
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from plexica.permissions.abac import CompiledPolicy, apply_operator, orderable
from plexica.permissions.conditions import (
    MISSING,
    ORDERING,
    AllOf,
    AnyOf,
    Kind,
    Leaf,
    Node,
    Not,
    Ref,
    kind_of,
    resolve,
)
from plexica.permissions.decision import Subject
from plexica.permissions.rbac import is_permission_key
from plexica_sdk.errors import ValidationError

__all__ = ["access_clause", "authorized", "columns_of", "resource_of"]

T = TypeVar("T", bound=tuple[Any, ...])
Expr: TypeAlias = bool | ColumnElement[bool]
Columns: TypeAlias = Mapping[str, tuple[ColumnElement[Any], Kind]]


class _position(FunctionElement[int]):
    """1-based position of ``needle`` in ``haystack`` (0: absent); case-sensitive on both dialects."""

    type = sa.Integer()
    inherit_cache = True
    name = "position"


@compiles(_position)
def _position_default(element: _position, compiler: SQLCompiler, **kw: Any) -> str:
    return f"instr({compiler.process(element.clauses, **kw)})"


@compiles(_position, "postgresql")
def _position_postgresql(element: _position, compiler: SQLCompiler, **kw: Any) -> str:
    return f"strpos({compiler.process(element.clauses, **kw)})"


class _bytewise(FunctionElement[str]):
    """A string compared by code point: ``COLLATE "C"`` on PostgreSQL, SQLite's default elsewhere."""

    type = sa.String()
    inherit_cache = True
    name = "bytewise"


@compiles(_bytewise)
def _bytewise_default(element: _bytewise, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)})"


@compiles(_bytewise, "postgresql")
def _bytewise_postgresql(element: _bytewise, compiler: SQLCompiler, **kw: Any) -> str:
    return f'({compiler.process(element.clauses, **kw)}) COLLATE "C"'


def _kind_of_type(type_: sa.types.TypeEngine[Any]) -> Kind:
    if isinstance(type_, sa.Boolean):
        return "bool"
    if isinstance(type_, sa.Integer | sa.Float):
        return "num"
    if isinstance(type_, sa.String):
        return "str"
    return None


def columns_of(table: FromClause) -> dict[str, tuple[ColumnElement[Any], Kind]]:
    """The columns of ``table`` that stand for resource attributes, with their kinds."""
    found: dict[str, tuple[ColumnElement[Any], Kind]] = {}
    for column in table.columns:
        kind = _kind_of_type(column.type)
        if kind is not None:
            found[column.key] = (column, kind)
    return found


def resource_of(row: Mapping[str, Any], table: FromClause) -> dict[str, Any]:
    """The resource attributes of a row of ``table``, as the SQL filter sees them."""
    return {key: row[key] for key in columns_of(table) if key in row}


# ------------------------------------------------------------- combinators


def _and(*parts: Expr) -> Expr:
    kept = []
    for part in parts:
        if part is False:
            return False
        if part is not True:
            kept.append(part)
    return True if not kept else kept[0] if len(kept) == 1 else sa.and_(*kept)


def _or(*parts: Expr) -> Expr:
    kept = []
    for part in parts:
        if part is True:
            return True
        if part is not False:
            kept.append(part)
    return False if not kept else kept[0] if len(kept) == 1 else sa.or_(*kept)


def _not(part: Expr) -> Expr:
    return (not part) if isinstance(part, bool) else sa.not_(part)


# ----------------------------------------------------------------- leaves

Operand: TypeAlias = tuple[ColumnElement[Any], Kind] | Any  # a column with its kind, or a constant


def _operand(path: tuple[str, ...], attributes: Mapping[str, Any], columns: Columns) -> Operand:
    if path[0] == "resource":
        return columns.get(path[1], MISSING) if len(path) == 2 else MISSING
    return resolve(attributes, path)


def _is_column(operand: Operand) -> bool:
    return isinstance(operand, tuple) and len(operand) == 2 and isinstance(operand[0], ColumnElement)


def _guard(*operands: Operand) -> Expr:
    return _and(*(op[0].is_not(None) for op in operands if _is_column(op)))


def _kind(operand: Operand) -> Kind:
    return operand[1] if _is_column(operand) else kind_of(operand)


def _sql(operand: Operand) -> ColumnElement[Any]:
    if _is_column(operand):
        return operand[0]
    return sa.literal(operand, sa.Boolean() if isinstance(operand, bool) else None)


def _equals(a: Operand, b: Operand) -> Expr:
    kind = _kind(a)
    if kind not in ("str", "num", "bool") or kind != _kind(b):
        return False
    return _sql(a) == _sql(b)


def _in_list(a: Operand, items: Any) -> Expr:
    if _is_column(items) or kind_of(items) != "list":
        return False  # a column never holds a list
    if not _is_column(a):
        return apply_operator("in", a, items)
    # Each item bound with its own type: an integer column may meet float items, and asyncpg
    # refuses a float bound as an integer.
    kept = [_sql(item) for item in items if kind_of(item) == a[1]]
    return _sql(a).in_(kept) if kept else False


def _substring(a: Operand, b: Operand, *, at_start: bool) -> Expr:
    if _kind(a) != "str" or _kind(b) != "str":
        return False
    position = _position(_sql(a), _sql(b))
    return position == 1 if at_start else position > 0


def _compare(op: str, a: Operand, b: Operand) -> Expr:
    if not orderable_kinds(_kind(a), _kind(b)):
        return False
    left, right = _sql(a), _sql(b)
    if _kind(a) == "str":
        left, right = _bytewise(left), _bytewise(right)
    return {"gt": left > right, "gte": left >= right, "lt": left < right, "lte": left <= right}[op]


def orderable_kinds(a: Kind, b: Kind) -> bool:
    return a in ("str", "num") and a == b


def _leaf(leaf: Leaf, attributes: Mapping[str, Any], columns: Columns) -> Expr:
    a = _operand(leaf.attribute, attributes, columns)
    if a is MISSING:
        return False
    if leaf.operator == "exists":
        return _guard(a)
    b = _operand(leaf.value.path, attributes, columns) if isinstance(leaf.value, Ref) else leaf.value
    if b is MISSING:
        return False
    op = leaf.operator
    if not _is_column(a) and not _is_column(b):
        return apply_operator(op, a, b)
    if op == "equals":
        body = _equals(a, b)
    elif op == "not_equals":
        body = _not(_equals(a, b))
    elif op == "in":
        body = _in_list(a, b)
    elif op == "contains":
        body = _in_list(b, a) if not _is_column(a) and kind_of(a) == "list" else _substring(a, b, at_start=False)
    elif op == "starts_with":
        body = _substring(a, b, at_start=True)
    else:
        body = _compare(op, a, b)
    return _and(_guard(a, b), body)


def _leaf_error(leaf: Leaf, attributes: Mapping[str, Any], columns: Columns) -> Expr:
    a = _operand(leaf.attribute, attributes, columns)
    b = _operand(leaf.value.path, attributes, columns) if isinstance(leaf.value, Ref) else leaf.value
    if a is MISSING or b is MISSING:
        return False
    if not _is_column(a) and not _is_column(b):
        return not orderable(a, b)
    return False if orderable_kinds(_kind(a), _kind(b)) else _guard(a, b)


def _tree(node: Node, attributes: Mapping[str, Any], columns: Columns) -> Expr:
    if isinstance(node, Leaf):
        return _leaf(node, attributes, columns)
    if isinstance(node, Not):
        return _not(_tree(node.child, attributes, columns))
    parts = [_tree(child, attributes, columns) for child in node.children]
    return _and(*parts) if isinstance(node, AllOf) else _or(*parts)


def _errors(policy: CompiledPolicy, attributes: Mapping[str, Any], columns: Columns) -> Expr:
    if policy.broken:
        return True
    return _or(*(_leaf_error(leaf, attributes, columns) for leaf in _ordering_leaves(policy.node)))


def _ordering_leaves(node: Node | None) -> list[Leaf]:
    if node is None:
        return []
    if isinstance(node, Leaf):
        return [node] if node.operator in ORDERING else []
    if isinstance(node, Not):
        return _ordering_leaves(node.child)
    assert isinstance(node, AllOf | AnyOf)
    return [leaf for child in node.children for leaf in _ordering_leaves(child)]


def _holds(policy: CompiledPolicy, attributes: Mapping[str, Any], columns: Columns) -> Expr:
    if policy.broken:
        return False
    return True if policy.node is None else _tree(policy.node, attributes, columns)


# ----------------------------------------------------------------- clause


def _rbac(permission: str, subject: Subject, columns: Columns) -> Expr:
    patterns = subject.model.patterns
    if patterns(subject.tenant_roles).find(permission) is not None:
        return True
    here = patterns(subject.roles_in(subject.workspace_id)).find(permission) is not None
    workspace = columns.get("workspace_id")
    if workspace is None or workspace[1] != "str":
        return here
    granted = sorted(
        ws
        for ws, roles in subject.grants.workspace_roles.items()
        if patterns(subject.tenant_roles | roles).find(permission) is not None
    )
    column = workspace[0]
    return _or(
        _and(column.is_not(None), column.in_(granted)) if granted else False,
        _and(column.is_(None), here),
    )


def access_clause(permission: str, subject: Subject, columns: Columns) -> Expr:
    """The condition a row (as ``columns``) must meet for ``subject`` to hold ``permission`` on it.

    Returns ``True``/``False`` when the answer is the same for every row.
    """
    if not is_permission_key(permission):
        return False
    deny, allow = subject.model.applicable(permission)
    attributes = subject.attributes(permission, {})
    errors = _or(*(_errors(p, attributes, columns) for p in (*deny, *allow)))
    denied = _or(*(_holds(p, attributes, columns) for p in deny))
    allowed = _or(_rbac(permission, subject, columns), *(_holds(p, attributes, columns) for p in allow))
    return _and(_not(errors), _not(denied), allowed)


def authorized(
    statement: Select[T], permission: str, subject: Subject, *, table: FromClause | None = None
) -> Select[T]:
    """``statement`` restricted to the rows of ``table`` that ``subject`` holds ``permission`` on.

    Args:
        statement: a ``select()`` over the resource table.
        permission: the permission key each row is checked for.
        subject: the resolved subject (``await engine.subject(ctx)``).
        table: the resource table; default: the statement's only ``FROM``.

    Raises:
        ValidationError: no table is given and the statement selects from several.
    """
    if table is None:
        froms = statement.get_final_froms()
        if len(froms) != 1 or isinstance(froms[0], sa.Join):
            raise ValidationError("pass table= when the statement selects from several tables", field="table")
        table = froms[0]
    clause = access_clause(permission, subject, columns_of(table))
    if clause is True:
        return statement
    return statement.where(sa.false() if clause is False else clause)
