"""Hypothesis strategies for the permission engine: roles, grants, policies, resources."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from plexica.permissions.rbac import ADMIN_ROLE, MEMBER_ROLE, WORKSPACE_ROLES
from plexica_sdk.types import Policy

USERS = ["u1", "u2", "u3"]
TEAMS = ["t1", "t2"]
WORKSPACES = ["w1", "w2", "w3"]
CUSTOM_ROLES = ["r1", "r2", "r3"]
PERMISSIONS = ["docs:doc:read", "docs:doc:write"]
PATTERNS = ["docs:doc:read", "docs:doc:write", "docs:doc:*", "docs:*", "*", "other:thing:read"]
STRINGS = ["", "a", "ab", "b", "B", "u1", "u2", "w1", "t1", "docs:", "docs:doc:read"]

#: The resource table's attributes and the kinds of the values they hold.
COLUMNS: dict[str, str] = {
    "author_id": "str",
    "workspace_id": "workspace",
    "state": "str",
    "title": "str",
    "size": "int",
    "score": "float",
    "locked": "bool",
}

strings = st.sampled_from(STRINGS)
ints = st.integers(min_value=-3, max_value=3)
floats = st.sampled_from([-1.5, 0.0, 0.5, 2.0, 3.0])
scalars = st.one_of(strings, ints, floats, st.booleans())


def column_values(kind: str) -> st.SearchStrategy[Any]:
    values: dict[str, st.SearchStrategy[Any]] = {
        "str": strings,
        "workspace": st.sampled_from(WORKSPACES),
        "int": ints,
        "float": floats,
        "bool": st.booleans(),
    }
    return st.one_of(st.none(), values[kind], values[kind], values[kind])


rows = st.lists(
    st.fixed_dictionaries({name: column_values(kind) for name, kind in COLUMNS.items()}), min_size=3, max_size=10
)

resource_columns = st.sampled_from([f"resource.{name}" for name in COLUMNS])
attributes = (
    resource_columns
    | resource_columns
    | st.sampled_from(
        [
            "resource.created",  # a column of a type the filter does not map: always missing
            "resource.nowhere",
            "resource.author_id.deeper",
            "subject.id",
            "subject.teams",
            "subject.roles",
            "subject.workspace_id",
            "action",
            "tenant.plan",
            "tenant.nothing",
            "environment.hour",
        ]
    )
)
references = attributes.map(lambda path: {"ref": path})


def _typed(kind: str) -> st.SearchStrategy[Any]:
    return {"str": strings, "workspace": st.sampled_from(WORKSPACES), "int": ints, "float": floats}.get(
        kind, st.booleans()
    )


@st.composite
def leaves(draw: st.DrawFn) -> dict[str, Any]:
    attribute = draw(attributes)
    operator = draw(
        st.sampled_from(["equals", "not_equals", "in", "contains", "starts_with", "exists", "gt", "gte", "lt", "lte"])
    )
    leaf: dict[str, Any] = {"attribute": attribute, "operator": operator}
    if operator == "exists":
        return leaf
    kind = COLUMNS.get(attribute.removeprefix("resource."), "")
    # Mostly values of the attribute's own kind, so that leaves hold for some rows and not others.
    value = _typed(kind) if kind and draw(st.integers(0, 4)) else scalars
    if draw(st.integers(0, 4)) == 0:
        leaf["value"] = draw(references)
    elif operator == "in":
        leaf["value"] = draw(st.lists(value, min_size=1, max_size=4))
    elif operator == "starts_with":
        leaf["value"] = draw(strings)
    elif operator in ("gt", "gte", "lt", "lte"):
        leaf["value"] = draw(value.filter(lambda v: not isinstance(v, bool)) if kind != "bool" else ints)
    else:
        leaf["value"] = draw(value)
    return leaf


conditions = st.recursive(
    leaves(),
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda c: {"all": c}),
        st.lists(children, min_size=1, max_size=3).map(lambda c: {"any": c}),
        children.map(lambda c: {"not": c}),
    ),
    max_leaves=6,
)


@st.composite
def policies(draw: st.DrawFn) -> list[Policy]:
    found = []
    for index in range(draw(st.integers(0, 4))):
        found.append(
            Policy(
                id=f"p{index}",
                effect=draw(st.sampled_from(["allow", "allow", "deny"])),
                target=draw(st.sampled_from(["docs:doc:read", "docs:doc:write", "docs:*", "docs:*", "*", "other:*"])),
                condition=draw(st.one_of(conditions, conditions, conditions, st.none())),
            )
        )
    return found


role_tables = st.fixed_dictionaries(
    {role: st.lists(st.sampled_from(PATTERNS), max_size=3) for role in CUSTOM_ROLES}
    | {MEMBER_ROLE: st.lists(st.sampled_from(PATTERNS), max_size=2)}
    | {role: st.lists(st.sampled_from(PATTERNS), max_size=2) for role in WORKSPACE_ROLES["admin"]}
)
grantable = st.sampled_from([*CUSTOM_ROLES, MEMBER_ROLE, ADMIN_ROLE])
grants = st.lists(
    st.tuples(
        grantable,
        st.sampled_from([("user", u) for u in USERS] + [("team", t) for t in TEAMS] + [("user", "u1")] * 3),
        st.sampled_from(WORKSPACES) | st.none(),
    ),
    max_size=6,
    unique=True,
)
team_members = st.fixed_dictionaries({team: st.sets(st.sampled_from(USERS), max_size=3) for team in TEAMS})
memberships = st.dictionaries(st.sampled_from(WORKSPACES), st.sampled_from(list(WORKSPACE_ROLES)), max_size=3)
token_roles: st.SearchStrategy[set[str]] = st.just(set()) | st.sets(
    st.sampled_from([*CUSTOM_ROLES, MEMBER_ROLE, ADMIN_ROLE]), max_size=2
)
