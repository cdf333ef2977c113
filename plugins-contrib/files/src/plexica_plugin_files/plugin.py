"""The plugin object: manifest (permissions, workspace roles, events, storage), the owner policy, hooks."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from plexica_plugin_files.limits import CONFIG_SCHEMA
from plexica_plugin_files.routes import DELETE, READ, WRITE, routes
from plexica_plugin_files.uploads import DELETED, UPLOADED, finish, pending_by_key
from plexica_sdk import (
    EventTypeDef,
    Host,
    ObjectInfo,
    PermissionDef,
    PluginManifest,
    Policy,
    RoleDef,
    StorageNamespace,
    TenantContext,
    hookimpl,
)
from plexica_sdk.errors import ValidationError

log = logging.getLogger(__name__)

_FILE_FIELDS: Final = {
    "id": {"type": "string"},
    "workspace_id": {"type": "string"},
    "owner_id": {"type": "string"},
    "name": {"type": "string"},
    "size": {"type": "integer"},
    "content_type": {"type": "string"},
}

#: "The owner or a workspace admin may delete": admins by their role, owners by this policy.
OWNER_DELETES = Policy(
    id="owner-deletes",
    effect="allow",
    target=DELETE,
    condition={"attribute": "resource.owner_id", "operator": "equals", "value": {"ref": "subject.id"}},
    description="The uploader of a file may delete it",
)


class FilesPlugin:
    """Workspace-scoped attachments on the tenant's confined object storage."""

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(
            name="files",
            version="1.0.0",
            description="Workspace-scoped file attachments with presigned upload and download",
            permissions=(
                PermissionDef(key=READ, description="List files and download them"),
                PermissionDef(key=WRITE, description="Upload files"),
                PermissionDef(key=DELETE, description="Delete any file of the workspace"),
            ),
            # Granted inside a workspace by membership; admin > member > viewer (an admin holds all three).
            default_roles=(
                RoleDef(name="workspace_viewer", permissions=(READ,)),
                RoleDef(name="workspace_member", permissions=(READ, WRITE)),
                RoleDef(name="workspace_admin", permissions=(DELETE,)),
            ),
            event_types=(
                EventTypeDef(
                    type=UPLOADED,
                    description="A file was uploaded and passed its checks",
                    schema={"type": "object", "required": list(_FILE_FIELDS), "properties": _FILE_FIELDS},
                ),
                EventTypeDef(
                    type=DELETED,
                    description="A file was deleted",
                    schema={
                        "type": "object",
                        "required": [*_FILE_FIELDS, "deleted_by"],
                        "properties": {**_FILE_FIELDS, "deleted_by": {"type": "string"}},
                    },
                ),
            ),
            storage=(StorageNamespace(name="files"),),
            config_schema=CONFIG_SCHEMA,
        )

    @hookimpl
    def plexica_policies(self) -> Sequence[Policy]:
        return [OWNER_DELETES]

    @hookimpl
    def plexica_tenant_migrations(self) -> str:
        return str(Path(__file__).parent / "migrations")

    @hookimpl
    def plexica_routes(self) -> Sequence[Any]:
        return routes

    @hookimpl
    async def plexica_object_uploaded(self, tenant: TenantContext, key: str, info: ObjectInfo, host: Host) -> None:
        """The local store's presigned PUT landed: finish the upload at once (S3 uploads call ``complete``)."""
        row = await pending_by_key(host, key)
        if row is None:
            return
        try:
            await finish(host, row, info)
        except ValidationError as exc:
            log.info("upload of file %s in tenant %s refused: %s", row.id, tenant.slug, exc)
