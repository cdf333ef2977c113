"""The ``core`` plugin: the permissions, roles and event types of the host itself."""

from __future__ import annotations

from typing import final

from plexica_sdk.markers import hookimpl
from plexica_sdk.types import EventTypeDef, PermissionDef, PluginManifest, RoleDef

__all__ = ["CORE_EVENT_TYPES", "CORE_PERMISSIONS", "CorePlugin"]

CORE_VERSION = "0.1.0"

CORE_PERMISSIONS = (
    PermissionDef(key="core:tenant:read", description="See the tenant's details"),
    PermissionDef(key="core:plugin:read", description="List the plugins"),
    PermissionDef(key="core:user:read", description="List the tenant's users"),
)

_TENANT_SCHEMA = {
    "type": "object",
    "required": ["tenant_id", "slug"],
    "properties": {"tenant_id": {"type": "string"}, "slug": {"type": "string"}, "name": {"type": "string"}},
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
                RoleDef(name="member", permissions=("core:tenant:read", "core:plugin:read")),
                RoleDef(name="tenant_admin", permissions=("core:*",)),
            ),
        )
