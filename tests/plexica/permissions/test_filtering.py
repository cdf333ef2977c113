"""The SQL filter keeps exactly the rows a single ``authorize`` call allows, on SQLite and PostgreSQL.

Property-based: random roles, grants, teams, memberships, policies (valid or not) and rows; for
each permission, ``authorize``, ``explain`` and ``authorized(select(...))`` must agree row by row,
and a holding deny policy must always win.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, given, settings, target
from hypothesis import strategies as st

from plexica.db.engine import Database
from plexica.permissions.abac import compile_policy
from plexica.permissions.decision import Grants, Subject, TenantModel
from plexica.permissions.filtering import access_clause, authorized, columns_of, resource_of
from plexica.permissions.rbac import is_permission_key
from plexica_sdk.errors import ValidationError
from plexica_sdk.types import Policy
from tests.plexica.permissions import strategies as s
from tests.plexica.permissions.conftest import MakeTenant, Tenant

pytestmark = pytest.mark.anyio

metadata = sa.MetaData()
docs = sa.Table(
    "docs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("author_id", sa.String(20), nullable=True),
    sa.Column("workspace_id", sa.String(36), nullable=True),
    sa.Column("state", sa.String(20), nullable=True),
    # A linguistic collation on PostgreSQL: the filter must still order by code point, as Python does.
    sa.Column("title", sa.Text().with_variant(sa.Text(collation="und-x-icu"), "postgresql"), nullable=True),
    sa.Column("size", sa.Integer, nullable=True),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("locked", sa.Boolean, nullable=True),
    sa.Column("created", sa.DateTime(timezone=True), nullable=True),
)


@pytest.fixture
async def tenant(make_tenant: MakeTenant) -> Tenant:
    tenant = await make_tenant("filter")
    async with tenant.db.tenant_connection(tenant.ctx.schema) as conn:
        await conn.run_sync(metadata.create_all)
    return tenant


def subject_of(
    roles: dict[str, list[str]],
    policies: list[Policy],
    grants: list[tuple[str, tuple[str, str], str | None]],
    members: dict[str, set[str]],
    memberships: dict[str, str],
    token_roles: set[str],
    workspace: str | None,
) -> Subject:
    teams = {team for team, users in members.items() if "u1" in users}
    rows = [
        (role, ws, "user" if kind == "user" else f"team:{who}")
        for role, (kind, who), ws in grants
        if (kind == "user" and who == "u1") or (kind == "team" and who in teams)
    ]
    model = TenantModel(roles, [compile_policy(p, validate=False) for p in policies])
    return Subject(
        model,
        "u1",
        token_roles=token_roles,
        grants=Grants.build("u1", teams=teams, grants=rows, memberships=memberships),
        workspace_id=workspace,
        tenant={"plan": "pro", "slug": "filter"},
        environment={"hour": 9, "time": "2026-01-01T09:00:00Z"},
    )


async def select_ids(db: Database, tenant: Tenant, statement: sa.Select[Any]) -> set[int]:
    async with db.tenant_session(tenant.ctx.schema) as session:
        return set((await session.execute(statement)).scalars())


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    roles=s.role_tables,
    policies=s.policies(),
    grants=s.grants,
    members=s.team_members,
    memberships=s.memberships,
    token_roles=s.token_roles,
    workspace=st.none() | st.sampled_from(s.WORKSPACES),
    rows=s.rows,
)
async def test_check_explain_and_the_sql_filter_agree_and_deny_wins(
    tenant: Tenant,
    roles: dict[str, list[str]],
    policies: list[Policy],
    grants: list[tuple[str, tuple[str, str], str | None]],
    members: dict[str, set[str]],
    memberships: dict[str, str],
    token_roles: set[str],
    workspace: str | None,
    rows: list[dict[str, Any]],
) -> None:
    db = tenant.db
    async with db.tenant_session(tenant.ctx.schema) as session:
        await session.execute(docs.delete())
        await session.execute(docs.insert(), [{"id": i, **row} for i, row in enumerate(rows)])
        stored = [dict(r._mapping) for r in (await session.execute(sa.select(docs))).all()]
    subject = subject_of(roles, policies, grants, members, memberships, token_roles, workspace)
    splits = 0
    for permission in s.PERMISSIONS:
        allowed = set()
        for row in stored:
            decision = subject.authorize(permission, row)  # the full row: its datetime is "missing"
            assert subject.explain(permission, row).decision == decision
            assert subject.authorize(permission, resource_of(row, docs)) == decision
            if decision.allowed:
                allowed.add(row["id"])
            deny, allow = subject.model.applicable(permission)
            attributes = subject.attributes(permission, row)
            if any(p.errors(attributes) for p in (*deny, *allow)) or any(p.matches(attributes) for p in deny):
                assert not decision.allowed, "deny must always win"
        statement = authorized(sa.select(docs.c.id), permission, subject)
        assert await select_ids(db, tenant, statement) == allowed
        splits += 0 < len(allowed) < len(stored)
        event("some rows allowed, some not" if 0 < len(allowed) < len(stored) else "all or none allowed")
        event("filtered in SQL" if statement.whereclause is not None else "no WHERE")
    target(float(splits), label="permissions whose rows split")  # steers generation to the interesting cases


async def test_a_filter_that_allows_everything_adds_no_where(tenant: Tenant) -> None:
    subject = subject_of({"member": ["*"]}, [], [], {}, {}, {"member"}, None)
    statement = authorized(sa.select(docs), "docs:doc:read", subject)
    assert statement.whereclause is None


async def test_a_filter_that_allows_nothing_selects_nothing(tenant: Tenant) -> None:
    subject = subject_of({}, [], [], {}, {}, set(), None)
    async with tenant.db.tenant_session(tenant.ctx.schema) as session:
        await session.execute(docs.insert().values(id=1, author_id="u1"))
    assert await select_ids(tenant.db, tenant, authorized(sa.select(docs.c.id), "docs:doc:read", subject)) == set()
    assert access_clause("docs:*", subject, columns_of(docs)) is False  # not a key: nothing


async def test_workspace_grants_become_a_workspace_filter(tenant: Tenant) -> None:
    subject = subject_of({"r1": ["docs:doc:read"]}, [], [("r1", ("user", "u1"), "w2")], {}, {}, set(), None)
    async with tenant.db.tenant_session(tenant.ctx.schema) as session:
        await session.execute(docs.insert(), [{"id": 1, "workspace_id": "w1"}, {"id": 2, "workspace_id": "w2"}])
    statement = authorized(sa.select(docs.c.id), "docs:doc:read", subject)
    assert await select_ids(tenant.db, tenant, statement) == {2}


def test_a_join_needs_the_table_named() -> None:
    other = sa.Table("other", sa.MetaData(), sa.Column("id", sa.Integer))
    subject = subject_of({}, [], [], {}, {}, set(), None)
    statement = sa.select(docs.c.id, other.c.id).join_from(docs, other, docs.c.id == other.c.id)
    with pytest.raises(ValidationError) as caught:
        authorized(statement, "docs:doc:read", subject)
    assert caught.value.field == "table"
    assert authorized(statement, "docs:doc:read", subject, table=docs).whereclause is not None


def test_only_permission_keys_are_filtered_for() -> None:
    assert not is_permission_key("docs:doc:*")


async def test_strings_order_by_code_point_in_sql_as_in_python(tenant: Tenant) -> None:
    title_after_a = Policy(
        id="p",
        effect="allow",
        target="docs:*",
        condition={"attribute": "resource.title", "operator": "gt", "value": "a"},
    )
    subject = subject_of({}, [title_after_a], [], {}, {}, set(), None)
    titles = {1: "B", 2: "b", 3: "a", 4: "Ä", 5: "ab"}
    async with tenant.db.tenant_session(tenant.ctx.schema) as session:
        await session.execute(docs.insert(), [{"id": i, "title": t} for i, t in titles.items()])
    expected = {i for i, t in titles.items() if t > "a"}
    assert expected == {2, 4, 5}
    assert {i for i, t in titles.items() if subject.authorize("docs:doc:read", {"title": t}).allowed} == expected
    assert await select_ids(tenant.db, tenant, authorized(sa.select(docs.c.id), "docs:doc:read", subject)) == expected
