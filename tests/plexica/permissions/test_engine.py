"""The engine over a real tenant schema: plugin lifecycle, people, isolation, memory, decision log."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest
import sqlalchemy as sa

from plexica.cache import MemoryCache
from plexica.permissions import PermissionEngine, PermissionService, authorized, client_ip
from plexica.permissions import models as tables
from plexica.permissions.rbac import WORKSPACE_VIEWER_ROLE
from plexica.tenancy.naming import cache_prefix
from plexica_sdk import hookimpl
from plexica_sdk.errors import ConflictError, PermissionDeniedError, PluginLoadError, ValidationError
from plexica_sdk.types import Policy, TenantContext
from tests.plexica.permissions.conftest import (
    BoardsPlugin,
    Installed,
    MakeEngine,
    MakeTenant,
    TasksPlugin,
    make_plugins,
)

pytestmark = pytest.mark.anyio


async def test_an_installed_plugins_grants_policies_and_roles_are_registered(
    engine: PermissionEngine, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    member = tenant.request("ann", roles=["member"])
    assert (await engine.authorize(member, "tasks:task:read")).decided_by == "role:member"
    decision = await engine.authorize(member, "tasks:task:write", {"author_id": "ann"})
    assert decision.decided_by == "policy:tasks:authors-edit-own"
    assert not (await engine.authorize(member, "tasks:task:write", {"author_id": "bob"})).allowed
    model = await engine.model(tenant.ctx)
    assert model.roles["tasks-editor"] == {"tasks:task:*"}
    async with tenant.db.tenant_session(tenant.ctx.schema) as session:
        keys = set((await session.execute(sa.select(tables.definitions.c.key))).scalars())
    assert keys == {"tasks:task:read", "tasks:task:write"}


async def test_uninstalling_removes_the_contributions_and_leaves_grants_inert(
    make_engine: MakeEngine, make_tenant: MakeTenant, installed: Installed
) -> None:
    tenant = await make_tenant()
    engine = make_engine(with_installed=False)  # the lifecycle calls the engine itself
    await engine.on_plugin_installed(tenant.ctx, "tasks")
    service = PermissionService(tenant.db, engine)
    await service.grant(tenant.ctx, "tasks-editor", user_id="ann")
    assert (await engine.authorize(tenant.request("ann"), "tasks:task:write")).allowed

    await engine.on_plugin_uninstalled(tenant.ctx, "tasks")
    assert not (await engine.authorize(tenant.request("ann", roles=["member"]), "tasks:task:read")).allowed
    assert not (await engine.authorize(tenant.request("ann"), "tasks:task:write")).allowed
    assert "tasks-editor" not in (await engine.model(tenant.ctx)).roles
    assert [g.role for g in await service.list_grants(tenant.ctx, user_id="ann")] == ["tasks-editor"]

    await engine.on_plugin_installed(tenant.ctx, "tasks")
    assert (await engine.authorize(tenant.request("ann"), "tasks:task:write")).allowed


async def test_the_registry_is_reconciled_when_the_lifecycle_did_not_call(
    make_engine: MakeEngine, make_tenant: MakeTenant, installed: Installed
) -> None:
    tenant = await make_tenant()
    installed.by_tenant[tenant.ctx.tenant_id] = {"tasks"}
    engine = make_engine(model_ttl=0.0)  # every check reloads, as after the model's ttl
    assert (await engine.authorize(tenant.request("ann", ["member"]), "tasks:task:read")).allowed
    installed.by_tenant[tenant.ctx.tenant_id] = set()
    assert not (await engine.authorize(tenant.request("ann", ["member"]), "tasks:task:read")).allowed


async def test_a_permission_key_owned_by_another_plugin_is_refused_at_install(
    make_engine: MakeEngine, make_tenant: MakeTenant, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = await make_tenant()
    async with tenant.db.tenant_session(tenant.ctx.schema) as session:
        await session.execute(tables.definitions.insert().values(key="tasks:task:read", plugin="boards"))
    engine = make_engine(with_installed=False)
    with pytest.raises(ConflictError, match="tasks:task:read"):
        await engine.on_plugin_installed(tenant.ctx, "tasks")
    assert not (await engine.authorize(tenant.request("ann", ["member"]), "tasks:task:read")).allowed
    reconciling = make_engine()
    with caplog.at_level(logging.ERROR, logger="plexica.permissions.engine"):
        assert not (await reconciling.authorize(tenant.request("ann", ["member"]), "tasks:task:read")).allowed
    assert "not registered" in caplog.text


async def test_a_plugin_role_that_is_a_custom_role_is_refused_at_install(
    make_engine: MakeEngine, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    engine = make_engine(with_installed=False)
    await PermissionService(tenant.db, engine).create_role(tenant.ctx, "tasks-editor", ["notes:*"])
    with pytest.raises(ConflictError, match="tasks-editor"):
        await engine.on_plugin_installed(tenant.ctx, "tasks")


async def test_two_plugins_share_system_roles_but_not_keys(
    make_engine: MakeEngine, make_tenant: MakeTenant, installed: Installed
) -> None:
    tenant = await make_tenant()
    installed.by_tenant[tenant.ctx.tenant_id] = {"tasks", "boards"}
    engine = make_engine(plugins=[TasksPlugin(), BoardsPlugin()])
    member = tenant.request("ann", ["member"])
    assert (await engine.authorize(member, "tasks:task:read")).allowed
    assert (await engine.authorize(member, "boards:task:read")).allowed
    with pytest.raises(ValidationError):
        await engine.on_plugin_installed(tenant.ctx, "core")


def test_a_plugin_policy_on_another_plugins_permissions_stops_start_up() -> None:
    class Sneaky(TasksPlugin):
        name = "sneaky"

        @hookimpl
        def plexica_policies(self) -> list[Policy]:
            return [Policy(id="x", effect="deny", target="tasks:*")]

    with pytest.raises(PluginLoadError, match="must target sneaky"):
        PermissionEngine(db=None, cache=MemoryCache(), plugins=make_plugins(Sneaky()))


def test_a_failing_policy_hook_stops_start_up_naming_the_plugin() -> None:
    class Broken(TasksPlugin):
        name = "broken"

        @hookimpl
        def plexica_policies(self) -> list[Policy]:
            raise RuntimeError("no policies today")

    with pytest.raises(PluginLoadError) as caught:
        PermissionEngine(db=None, cache=MemoryCache(), plugins=make_plugins(Broken()))
    assert caught.value.plugin == "broken"


async def test_teams_and_workspace_memberships_come_from_the_identity_tables(
    engine: PermissionEngine, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    await tenant.add_team("team-a", ["ann", "bob"])
    await tenant.add_member("ws-1", "ann", "viewer")
    service = PermissionService(tenant.db, engine)
    await service.grant(tenant.ctx, "tasks-editor", team_id="team-a", workspace_id="ws-2")
    ann = tenant.request("ann")
    assert (await engine.authorize(ann, "tasks:task:read", {"workspace_id": "ws-1"})).decided_by == (
        f"role:{WORKSPACE_VIEWER_ROLE}"
    )
    assert not (await engine.authorize(ann, "tasks:task:write", {"workspace_id": "ws-1"})).allowed
    assert (await engine.authorize(ann, "tasks:task:write", {"workspace_id": "ws-2"})).allowed
    assert (await engine.authorize(tenant.request("bob", workspace="ws-2"), "tasks:task:write")).allowed
    explanation = await engine.explain(tenant.request("carol"), "tasks:task:write", user_id="bob")
    assert explanation.decision.allowed is False  # bob, but tenant-wide: the grant is in ws-2
    assert (await engine.subject(ann)).grants.teams == {"team-a"}


async def test_membership_changes_apply_once_the_user_is_invalidated(
    engine: PermissionEngine, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    assert not (await engine.authorize(tenant.request("ann", workspace="ws-1"), "tasks:task:read")).allowed
    await tenant.add_member("ws-1", "ann", "viewer")
    assert not (await engine.authorize(tenant.request("ann", workspace="ws-1"), "tasks:task:read")).allowed
    await engine.invalidate_user(tenant.ctx, "ann")  # what the workspace service calls after its commit
    assert (await engine.authorize(tenant.request("ann", workspace="ws-1"), "tasks:task:read")).allowed


async def test_tenants_are_isolated_with_identical_user_and_workspace_ids(
    make_engine: MakeEngine, make_tenant: MakeTenant
) -> None:
    a, b = await make_tenant("tenant-a"), await make_tenant("tenant-b")
    cache = MemoryCache()
    engine = make_engine(cache)
    service = PermissionService(a.db, engine)
    await service.grant(a.ctx, "tasks-editor", user_id="ann", workspace_id="ws-1")
    await service.create_role(a.ctx, "auditor", ["*"])
    await service.grant(a.ctx, "auditor", user_id="ann")
    lock = Policy(
        id="lock", effect="deny", target="tasks:*", condition={"attribute": "subject.id", "operator": "exists"}
    )
    await service.create_policy(a.ctx, lock)
    for request in (b.request("ann", workspace="ws-1"), b.request("ann")):
        assert not (await engine.authorize(request, "tasks:task:write")).allowed
        assert not (await engine.authorize(request, "core:tenant:read")).allowed
    assert (await engine.authorize(b.request("ann", ["member"]), "tasks:task:read")).allowed  # no lock in B
    assert (await engine.authorize(a.request("ann", ["member"]), "tasks:task:read")).decided_by == "policy:lock"
    assert "auditor" not in (await engine.model(b.ctx)).roles
    # Each tenant's entry lives under its own slug; B's never holds A's grants.
    raw = await cache.get(f"{cache_prefix(b.slug)}permissions:ann")
    assert raw is not None and b"auditor" not in raw and b"tasks-editor" not in raw


async def test_tenant_ids_key_the_models_even_when_slugs_are_reused(
    engine: PermissionEngine, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    await PermissionService(tenant.db, engine).create_role(tenant.ctx, "auditor", ["*"])
    assert "auditor" in (await engine.model(tenant.ctx)).roles
    assert tenant.ctx.tenant_id in engine.loaded_tenants


async def test_only_the_tenants_in_use_are_loaded_up_to_the_bound(
    make_engine: MakeEngine, make_tenant: MakeTenant
) -> None:
    engine = make_engine(max_tenants=2)
    tenants = [await make_tenant(f"tenant-{i}") for i in range(3)]
    assert not engine.loaded_tenants
    for tenant in tenants:
        await engine.authorize(tenant.request("ann", ["member"]), "tasks:task:read")
    assert engine.loaded_tenants == (tenants[1].ctx.tenant_id, tenants[2].ctx.tenant_id)
    assert (await engine.authorize(tenants[0].request("ann", ["member"]), "tasks:task:read")).allowed
    engine.forget(tenants[0].ctx)  # a deleted tenant leaves nothing behind
    assert tenants[0].ctx.tenant_id not in engine.loaded_tenants


async def test_denials_go_to_the_decision_log_with_the_permission(
    engine: PermissionEngine, make_tenant: MakeTenant, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = await make_tenant()
    with (
        caplog.at_level(logging.INFO, logger="plexica.permissions.decisions"),
        pytest.raises(PermissionDeniedError) as caught,
    ):
        await engine.require(tenant.request("ann"), "tasks:task:write")
    record = next(r for r in caplog.records if r.name == "plexica.permissions.decisions")
    fields = record.__dict__
    assert (fields["permission"], fields["user"], fields["tenant"]) == ("tasks:task:write", "ann", tenant.slug)
    assert caught.value.permission == "tasks:task:write"


async def test_no_user_is_denied_and_subjects_need_one(engine: PermissionEngine, make_tenant: MakeTenant) -> None:
    tenant = await make_tenant()
    assert not (await engine.authorize(tenant.ctx, "tasks:task:read")).allowed
    with pytest.raises(ValidationError):
        await engine.subject(tenant.ctx)


async def test_resource_attributes_are_looked_up_when_a_policy_needs_them(
    make_engine: MakeEngine, make_tenant: MakeTenant
) -> None:
    looked_up: list[tuple[str, str]] = []

    async def attributes(ctx: TenantContext, kind: str, ident: str) -> Mapping[str, Any] | None:
        looked_up.append((kind, ident))
        if ident == "broken":
            raise RuntimeError("plugin failed")
        return {"author_id": "ann"} if ident == "t1" else None

    engine = make_engine(resource_attributes=attributes)
    tenant = await make_tenant()
    ann = tenant.request("ann")
    assert (await engine.authorize(ann, "tasks:task:write", {"type": "task", "id": "t1"})).allowed
    assert not (await engine.authorize(ann, "tasks:task:write", {"type": "task", "id": "t2"})).allowed
    assert not (await engine.authorize(ann, "tasks:task:write", {"type": "task", "id": "broken"})).allowed
    await engine.authorize(tenant.request("ann", ["member"]), "tasks:task:read", {"type": "task", "id": "t3"})
    assert looked_up == [("task", "t1"), ("task", "t2"), ("task", "broken")]  # no policy reads t3's attributes


async def test_environment_attributes_include_time_and_client_ip(
    make_engine: MakeEngine, make_tenant: MakeTenant
) -> None:
    import datetime as dt

    engine = make_engine(now=lambda: dt.datetime(2026, 3, 4, 22, 30, tzinfo=dt.UTC))
    tenant = await make_tenant()
    token = client_ip.set("10.0.0.7")
    try:
        subject = await engine.subject(tenant.request("ann"))
    finally:
        client_ip.reset(token)
    assert subject.attributes("x:y:z", None)["environment"] == {
        "time": "2026-03-04T22:30:00Z",
        "hour": 22,
        "weekday": 2,
        "client_ip": "10.0.0.7",
    }
    assert subject.attributes("x:y:z", None)["tenant"]["slug"] == tenant.slug


async def test_the_engine_subject_filters_sql(engine: PermissionEngine, make_tenant: MakeTenant) -> None:
    tenant = await make_tenant()
    tasks = sa.Table("tasks", sa.MetaData(), sa.Column("id", sa.Integer), sa.Column("author_id", sa.String))
    subject = await engine.subject(tenant.request("ann"))
    statement = authorized(sa.select(tasks.c.id), "tasks:task:write", subject)
    assert "author_id" in str(statement)
