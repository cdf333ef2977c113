"""One filled-in instance of every value type, shared by the type and converter tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

from plexica_sdk.types import (
    Decision,
    Event,
    EventTypeDef,
    FrontendDef,
    FrontendModule,
    MenuItem,
    ObjectInfo,
    PermissionDef,
    PluginInfo,
    PluginManifest,
    Policy,
    Principal,
    RoleDef,
    RouteRateLimit,
    StorageNamespace,
    TenantContext,
    TenantInfo,
)

WHEN = dt.datetime(2025, 3, 14, 15, 9, 26, 535897, tzinfo=dt.UTC)

PRINCIPAL = Principal(
    id="u-1",
    tenant_slug="acme",
    username="ada",
    email="ada@example.com",
    name="Ada Lovelace",
    roles=("member", "editor"),
    is_super_admin=False,
    issuer="http://plexica.localhost/realms/tenant-acme",
)

SAMPLES: dict[str, Any] = {
    "principal": PRINCIPAL,
    "tenant-info": TenantInfo(
        id="t-1",
        slug="acme",
        name="Acme",
        status="active",
        schema="tenant_acme",
        version=3,
        created_at=WHEN,
        updated_at=WHEN + dt.timedelta(days=1),
    ),
    "tenant-context": TenantContext(
        tenant_id="t-1",
        slug="acme",
        schema="tenant_acme",
        plan="enterprise",
        status="suspended",
        user=PRINCIPAL,
        workspace_id="w-1",
        trace_id="0af7651916cd43dd8448eb211c80319c",
    ),
    "permission-def": PermissionDef(key="notes:note:read", description="Read notes"),
    "role-def": RoleDef(name="editor", permissions=("notes:note:*",), description="Edits notes"),
    "policy": Policy(
        id="owner-only",
        effect="deny",
        target="notes:note:delete",
        condition={"not": {"attribute": "resource.owner", "operator": "equals", "value": "${user.id}"}},
        description="Only owners delete",
    ),
    "decision": Decision(allowed=True, reason="role editor grants notes:note:*", decided_by="role:editor"),
    "event-type-def": EventTypeDef(
        type="notes.note.created",
        description="A note was created",
        schema={"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
        version=2,
    ),
    "event": Event(
        type="notes.note.created",
        source="plexica/acme/notes",
        data={"id": "n-1", "tags": ["a", "b"], "pinned": True, "size": 1.5, "parent": None},
        id="6f1c3c1e-7d0a-4a57-9a51-0f1f2b3c4d5e",
        time=WHEN,
        subject="n-1",
        tenantid="t-1",
        workspaceid="w-1",
        userid="u-1",
        traceid="0af7651916cd43dd8448eb211c80319c",
        schemaversion=2,
    ),
    "storage-namespace": StorageNamespace(name="attachments", max_bytes=1_000_000, content_types=("image/*",)),
    "route-rate-limit": RouteRateLimit(path="/notes/*/export", methods=("POST",), cost=5),
    "frontend-def": FrontendDef(remote_entry="/plugins/notes/remoteEntry.js", exposed_modules=("./App",)),
    "menu-item": MenuItem(label="Notes", icon="note", order=10),
    "frontend-module": FrontendModule(
        name="./Editor",
        route="/notes/new",
        slot="notes.toolbar",
        menu=MenuItem(label="New"),
        permission="notes:note:write",
    ),
    "plugin-manifest": PluginManifest(
        name="notes",
        version="1.2.0",
        description="Notes",
        requires={"core": ">=0.1"},
        permissions=(PermissionDef(key="notes:note:read"), PermissionDef(key="notes:note:write")),
        default_roles=(RoleDef(name="member", permissions=("notes:note:read",)),),
        event_types=(EventTypeDef(type="notes.note.created"),),
        config_schema={"type": "object"},
        frontend=FrontendDef(remote_entry="/plugins/notes/remoteEntry.js"),
        rate_limits=(RouteRateLimit(path="/hooks/*", exempt=True),),
    ),
    "plugin-info": PluginInfo(
        name="notes", version="1.2.0", mode="remote", permissions=("notes:note:read",), requires={"core": ">=0.1"}
    ),
    "object-info": ObjectInfo(
        key="notes/n-1.txt", size=42, etag='"abc"', content_type="text/plain", last_modified=WHEN
    ),
}
