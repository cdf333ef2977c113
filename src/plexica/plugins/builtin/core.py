"""The ``core`` plugin: the permissions, roles and event types of the host itself."""

from __future__ import annotations

from typing import Any, final

from plexica_sdk.markers import hookimpl
from plexica_sdk.types import EventTypeDef, PermissionDef, PluginManifest, RoleDef

__all__ = ["CORE_EVENT_TYPES", "CORE_PERMISSIONS", "CorePlugin"]

CORE_VERSION = "0.1.0"

CORE_PERMISSIONS = (
    PermissionDef(key="core:tenant:read", description="See the tenant's details"),
    PermissionDef(key="core:plugin:read", description="List the plugins"),
    PermissionDef(key="core:plugin:configure", description="See and change the plugins' configuration"),
    PermissionDef(key="core:user:read", description="List the tenant's users"),
    PermissionDef(key="core:user:manage", description="Disable, enable and remove the tenant's users"),
    PermissionDef(key="core:team:read", description="List teams and their members"),
    PermissionDef(key="core:team:manage", description="Create, change and delete teams and their members"),
    PermissionDef(key="core:workspace:read", description="See the workspaces one is a member of"),
    PermissionDef(key="core:workspace:create", description="Create workspaces (becoming their admin)"),
    PermissionDef(
        key="core:workspace:manage", description="See and administer every workspace of the tenant, member or not"
    ),
    PermissionDef(key="core:role:read", description="List roles and their grants"),
    PermissionDef(key="core:role:write", description="Create, change and delete custom roles"),
    PermissionDef(key="core:role:grant", description="Grant and revoke roles"),
    PermissionDef(key="core:policy:read", description="List ABAC policies"),
    PermissionDef(key="core:policy:write", description="Create, change and delete ABAC policies"),
    PermissionDef(key="core:permission:inspect", description="Check and explain other users' permissions"),
)

_TENANT_SCHEMA = {
    "type": "object",
    "required": ["tenant_id", "slug"],
    "properties": {"tenant_id": {"type": "string"}, "slug": {"type": "string"}, "name": {"type": "string"}},
}

_ID = {"type": "string", "minLength": 1}
_NULLABLE_ID = {"type": ["string", "null"]}
_ROLE = {"type": "string", "enum": ["admin", "member", "viewer"]}

_WORKSPACE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["workspace_id", "slug", "name", "parent_id", "version"],
    "properties": {
        "workspace_id": _ID,
        "slug": {"type": "string"},
        "name": {"type": "string"},
        "parent_id": _NULLABLE_ID,
        "version": {"type": "integer", "minimum": 1},
    },
}
_WORKSPACE_CHANGE_SCHEMA: dict[str, Any] = {
    **_WORKSPACE_SCHEMA,
    "required": [*_WORKSPACE_SCHEMA["required"], "changes"],
    "properties": {**_WORKSPACE_SCHEMA["properties"], "changes": {"type": "array", "items": {"type": "string"}}},
}
_WORKSPACE_SUBTREE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["workspace_id", "root_id"],
    "properties": {"workspace_id": _ID, "root_id": _ID},
}
_MEMBER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["workspace_id", "user_id", "role"],
    "properties": {"workspace_id": _ID, "user_id": _ID, "role": _ROLE, "previous_role": _ROLE},
}
_USER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["user_id", "status"],
    "properties": {
        "user_id": _ID,
        "username": {"type": ["string", "null"]},
        "status": {"type": "string", "enum": ["active", "disabled", "removed"]},
        "changes": {"type": "array", "items": {"type": "string"}},
    },
}

CORE_EVENT_TYPES = (
    EventTypeDef(type="core.tenant.created", description="A tenant finished provisioning", schema=_TENANT_SCHEMA),
    EventTypeDef(type="core.tenant.suspended", description="A tenant was suspended", schema=_TENANT_SCHEMA),
    EventTypeDef(type="core.tenant.resumed", description="A tenant was resumed", schema=_TENANT_SCHEMA),
    EventTypeDef(type="core.tenant.deleted", description="A tenant was deleted", schema=_TENANT_SCHEMA),
    EventTypeDef(
        type="core.plugin.installed",
        description="A plugin was installed for a tenant",
        schema={"type": "object", "required": ["plugin", "version"]},
    ),
    EventTypeDef(type="core.workspace.created", description="A workspace was created", schema=_WORKSPACE_SCHEMA),
    EventTypeDef(
        type="core.workspace.updated",
        description="A workspace's name, slug, description or parent changed",
        schema=_WORKSPACE_CHANGE_SCHEMA,
    ),
    EventTypeDef(
        type="core.workspace.archived",
        description="A workspace was archived (one event per workspace of an archived subtree)",
        schema=_WORKSPACE_SUBTREE_SCHEMA,
    ),
    EventTypeDef(
        type="core.workspace.restored",
        description="A workspace was restored (one event per workspace of a restored subtree)",
        schema=_WORKSPACE_SUBTREE_SCHEMA,
    ),
    EventTypeDef(type="core.workspace.member.added", description="A user joined a workspace", schema=_MEMBER_SCHEMA),
    EventTypeDef(
        type="core.workspace.member.removed",
        description="A user left or was removed from a workspace",
        schema=_MEMBER_SCHEMA,
    ),
    EventTypeDef(
        type="core.workspace.member.role-updated",
        description="A workspace member's role changed",
        schema={**_MEMBER_SCHEMA, "required": [*_MEMBER_SCHEMA["required"], "previous_role"]},
    ),
    EventTypeDef(
        type="core.user.created", description="A user's first request created their profile", schema=_USER_SCHEMA
    ),
    EventTypeDef(
        type="core.user.updated",
        description="A user's profile changed (claims, or status: disabled / active)",
        schema={**_USER_SCHEMA, "required": ["user_id", "status", "changes"]},
    ),
    EventTypeDef(
        type="core.user.removed",
        description="A user was removed: profile disabled, memberships dropped",
        schema={**_USER_SCHEMA, "required": ["user_id"]},
    ),
    # Global: a lifecycle hook a remote plugin missed while down, delivered again (plexica.remote.deferred).
    EventTypeDef(
        type="core.plugin.hook-deferred",
        description="A remote plugin's lifecycle hook could not be delivered and will be retried",
        schema={
            "type": "object",
            "required": ["plugin", "hook", "args", "tenant"],
            "properties": {
                "plugin": {"type": "string"},
                "hook": {"type": "string"},
                "args": {"type": "object"},
                "tenant": {"type": "object"},
                "reason": {"type": "string"},
            },
        },
    ),
)


@final
class CorePlugin:
    """Built-in: declares what the core itself publishes and checks."""

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(
            name="core",
            version=CORE_VERSION,
            description="The Plexica core",
            permissions=CORE_PERMISSIONS,
            event_types=CORE_EVENT_TYPES,
            default_roles=(
                RoleDef(
                    name="member",
                    permissions=(
                        "core:tenant:read",
                        "core:plugin:read",
                        "core:user:read",
                        "core:team:read",
                        "core:workspace:read",
                        "core:workspace:create",
                    ),
                ),
                RoleDef(name="tenant_admin", permissions=("core:*",)),
            ),
        )
