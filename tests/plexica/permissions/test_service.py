"""Changing roles, grants and policies: validation naming the field, limits, immutability, invalidation."""

from __future__ import annotations

from typing import Any

import pytest

from plexica.permissions import PermissionEngine, PermissionService
from plexica.permissions import service as service_module
from plexica_sdk.errors import ConflictError, NotFoundError, ValidationError
from plexica_sdk.types import Policy
from tests.plexica.permissions.conftest import MakeTenant, Tenant

pytestmark = pytest.mark.anyio


@pytest.fixture
async def tenant(make_tenant: MakeTenant) -> Tenant:
    return await make_tenant()


async def test_roles_are_listed_by_kind(service: PermissionService, tenant: Tenant) -> None:
    await service.create_role(tenant.ctx, "auditor", ["core:*", "tasks:task:read"], "Reads everything")
    roles = {role.name: role for role in await service.list_roles(tenant.ctx)}
    assert roles["tenant_admin"].kind == "system" and roles["tenant_admin"].permissions[0] == "*"
    assert roles["member"].kind == "system" and "tasks:task:read" in roles["member"].permissions
    assert (roles["tasks-editor"].kind, roles["tasks-editor"].plugins) == ("plugin", ("tasks",))
    assert roles["tasks-editor"].description == "Edits tasks"
    assert (roles["auditor"].kind, roles["auditor"].description) == ("custom", "Reads everything")
    assert {"workspace_admin", "workspace_member", "workspace_viewer"} <= set(roles)


@pytest.mark.parametrize(
    ("name", "permissions", "description", "field"),
    [
        ("A", [], "", "name"),
        ("x" * 64, [], "", "name"),
        ("ok", "notes:*", "", "permissions"),
        ("ok", ["notes:note:read", "notes"], "", "permissions[1]"),
        ("ok", ["notes:note:read", 3], "", "permissions[1]"),
        ("ok", [], "x" * 1001, "description"),
    ],
    ids=["uppercase", "too-long", "not-a-list", "bad-pattern", "not-a-string", "long-description"],
)
async def test_role_validation_names_the_field(
    service: PermissionService, tenant: Tenant, name: str, permissions: Any, description: str, field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        await service.create_role(tenant.ctx, name, permissions, description)
    assert caught.value.field == field


@pytest.mark.parametrize("name", ["tenant_admin", "member", "workspace_viewer", "tasks-editor"])
async def test_system_and_plugin_roles_are_immutable(service: PermissionService, tenant: Tenant, name: str) -> None:
    await service.list_roles(tenant.ctx)  # registers the plugin's roles
    with pytest.raises(ConflictError):
        await service.create_role(tenant.ctx, name, [])
    with pytest.raises(ConflictError):
        await service.update_role(tenant.ctx, name, ["*"])
    with pytest.raises(ConflictError):
        await service.delete_role(tenant.ctx, name)


async def test_custom_roles_change_and_their_deletion_takes_their_grants(
    service: PermissionService, engine: PermissionEngine, tenant: Tenant
) -> None:
    await service.create_role(tenant.ctx, "auditor", ["tasks:task:read"])
    with pytest.raises(ConflictError):
        await service.create_role(tenant.ctx, "auditor", [])
    await service.grant(tenant.ctx, "auditor", user_id="ann")
    assert (await engine.authorize(tenant.request("ann"), "tasks:task:read")).decided_by == "role:auditor"
    await service.update_role(tenant.ctx, "auditor", ["core:tenant:read"])
    assert not (await engine.authorize(tenant.request("ann"), "tasks:task:read")).allowed
    assert (await engine.authorize(tenant.request("ann"), "core:tenant:read")).allowed
    await service.delete_role(tenant.ctx, "auditor")
    assert await service.list_grants(tenant.ctx, user_id="ann") == []
    with pytest.raises(NotFoundError):
        await service.get_role(tenant.ctx, "auditor")
    with pytest.raises(NotFoundError):
        await service.delete_role(tenant.ctx, "auditor")


async def test_custom_roles_are_bounded(
    service: PermissionService, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_module, "MAX_CUSTOM_ROLES", 2)
    await service.create_role(tenant.ctx, "r1", [])
    await service.create_role(tenant.ctx, "r2", [])
    with pytest.raises(ValidationError, match="at most 2"):
        await service.create_role(tenant.ctx, "r3", [])


async def test_grants_are_idempotent_and_revocable(service: PermissionService, tenant: Tenant) -> None:
    first = await service.grant(tenant.ctx, "tasks-editor", user_id="ann", workspace_id="ws-1", granted_by="root")
    again = await service.grant(tenant.ctx, "tasks-editor", user_id="ann", workspace_id="ws-1")
    assert first.id == again.id and first.created_by == "root"
    tenant_wide = await service.grant(tenant.ctx, "tasks-editor", user_id="ann")
    assert tenant_wide.id != first.id and tenant_wide.workspace_id is None
    assert len(await service.list_grants(tenant.ctx, role="tasks-editor")) == 2
    await service.revoke(tenant.ctx, "tasks-editor", user_id="ann", workspace_id="ws-1")
    await service.revoke_grant(tenant.ctx, tenant_wide.id)
    assert await service.list_grants(tenant.ctx) == []
    with pytest.raises(NotFoundError):
        await service.revoke(tenant.ctx, "tasks-editor", user_id="ann")
    with pytest.raises(NotFoundError):
        await service.revoke_grant(tenant.ctx, tenant_wide.id)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "user_id"),
        ({"user_id": "a", "team_id": "t"}, "user_id"),
        ({"user_id": ""}, "user_id"),
        ({"user_id": "a\nb"}, "user_id"),
        ({"team_id": "t" * 37}, "team_id"),
        ({"user_id": "a", "workspace_id": "w" * 37}, "workspace_id"),
    ],
    ids=["no-subject", "two-subjects", "empty", "control-char", "long-team", "long-workspace"],
)
async def test_grant_validation_names_the_field(
    service: PermissionService, tenant: Tenant, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        await service.grant(tenant.ctx, "member", **kwargs)
    assert caught.value.field == field


async def test_granting_an_unknown_role_is_not_found(service: PermissionService, tenant: Tenant) -> None:
    with pytest.raises(NotFoundError):
        await service.grant(tenant.ctx, "nope", user_id="ann")


async def test_grants_per_subject_are_bounded(
    service: PermissionService, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_module, "MAX_GRANTS_PER_SUBJECT", 1)
    await service.grant(tenant.ctx, "member", user_id="ann")
    with pytest.raises(ValidationError) as caught:
        await service.grant(tenant.ctx, "tasks-editor", user_id="ann")
    assert caught.value.field == "role"


async def test_a_team_grant_reaches_every_member_at_once(
    service: PermissionService, engine: PermissionEngine, tenant: Tenant
) -> None:
    await tenant.add_team("team-a", ["ann", "bob"])
    for user in ("ann", "bob"):
        assert not (await engine.authorize(tenant.request(user), "tasks:task:write")).allowed
    await service.grant(tenant.ctx, "tasks-editor", team_id="team-a")
    for user in ("ann", "bob"):
        assert (await engine.authorize(tenant.request(user), "tasks:task:write")).allowed
    await service.revoke(tenant.ctx, "tasks-editor", team_id="team-a")
    for user in ("ann", "bob"):
        assert not (await engine.authorize(tenant.request(user), "tasks:task:write")).allowed


LOCK = Policy(
    id="lock",
    effect="deny",
    target="tasks:*",
    condition={"attribute": "resource.locked", "operator": "equals", "value": True},
)


async def test_policies_are_created_updated_and_deleted(
    service: PermissionService, engine: PermissionEngine, tenant: Tenant
) -> None:
    admin = tenant.request("root", ["tenant_admin"])
    created = await service.create_policy(tenant.ctx, LOCK)
    assert created.source == "tenant" and created.policy.condition == LOCK.condition
    assert (await engine.authorize(admin, "tasks:task:read", {"locked": True})).decided_by == "policy:lock"
    with pytest.raises(ConflictError):
        await service.create_policy(tenant.ctx, LOCK)
    unlocked = Policy(id="lock", effect="deny", target="tasks:*", condition={"not": dict(LOCK.condition or {})})
    await service.update_policy(tenant.ctx, "lock", unlocked)
    assert (await engine.authorize(admin, "tasks:task:read", {"locked": True})).allowed
    await service.delete_policy(tenant.ctx, "lock")
    assert [p.policy.id for p in await service.list_policies(tenant.ctx)] == ["tasks:authors-edit-own"]
    with pytest.raises(NotFoundError):
        await service.delete_policy(tenant.ctx, "lock")


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        (Policy(id="a:b", effect="allow", target="*"), "id"),
        (Policy(id="p", effect="allow", target="tasks"), "target"),
        (
            Policy(id="p", effect="allow", target="*", condition={"all": [{"attribute": "x.y", "operator": "exists"}]}),
            "condition.all[0].attribute",
        ),
    ],
    ids=["reserved-id", "target", "condition-path"],
)
async def test_policy_validation_names_the_field(
    service: PermissionService, tenant: Tenant, policy: Policy, field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        await service.create_policy(tenant.ctx, policy)
    assert caught.value.field == field


async def test_plugin_policies_are_immutable_and_ids_must_match(service: PermissionService, tenant: Tenant) -> None:
    await service.list_roles(tenant.ctx)  # registers the plugin
    with pytest.raises(ConflictError):
        await service.delete_policy(tenant.ctx, "tasks:authors-edit-own")
    with pytest.raises(ValidationError) as caught:
        await service.update_policy(tenant.ctx, "other", LOCK)
    assert caught.value.field == "id"


async def test_policies_are_bounded(
    service: PermissionService, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_module, "MAX_POLICIES", 1)
    await service.create_policy(tenant.ctx, LOCK)
    with pytest.raises(ValidationError, match="at most 1"):
        await service.create_policy(tenant.ctx, Policy(id="other", effect="deny", target="*"))
