"""The plugin object: its manifest and the hooks it implements."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from plexica_plugin_notes.frontend import FRONTEND, VERSION, WEB, publish_remote_entry
from plexica_plugin_notes.models import notes
from plexica_plugin_notes.routes import routes
from plexica_sdk import (
    Event,
    EventTypeDef,
    Host,
    PermissionDef,
    PluginManifest,
    RoleDef,
    Subscription,
    TenantContext,
    hookimpl,
)

WELCOME_TITLE = "Welcome to your notes"

#: The per-tenant configuration: how many notes a tenant may keep.
CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "max_notes": {
            "type": "integer",
            "minimum": 1,
            "maximum": 100_000,
            "default": 1000,
            "description": "Notes a tenant may keep; creating one more is refused",
        },
    },
    "additionalProperties": False,
}


async def on_tenant_created(event: Event, host: Host) -> None:
    """Leave a welcome note in each new tenant.

    Delivery is at least once: ``mark_processed`` records the event id in the same transaction as
    the note, so a redelivered event changes nothing.
    """
    async with host.session() as session:
        if not await host.mark_processed(event, session=session):
            return
        now = dt.datetime.now(dt.UTC)
        await session.execute(
            notes.insert().values(
                id=str(uuid.uuid4()),
                title=WELCOME_TITLE,
                body=f"Tenant {host.tenant.slug} is ready.",
                author_id="system",
                created_at=now,
                updated_at=now,
            )
        )


class NotesPlugin:
    """Per-tenant notes."""

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(
            name="notes",
            version=VERSION,
            description="Per-tenant notes",
            permissions=(
                PermissionDef(key="notes:note:read", description="Read notes"),
                PermissionDef(key="notes:note:write", description="Create, change and delete notes"),
            ),
            default_roles=(
                RoleDef(name="member", permissions=("notes:note:read",)),
                RoleDef(name="notes-editor", permissions=("notes:note:read", "notes:note:write")),
            ),
            event_types=(
                EventTypeDef(
                    type="notes.note.created",
                    description="A note was created",
                    schema={
                        "type": "object",
                        "required": ["id", "title", "author_id"],
                        "properties": {
                            "id": {"type": "string"},
                            "title": {"type": "string"},
                            "author_id": {"type": "string"},
                        },
                    },
                ),
            ),
            # Each tenant's admin may change these (``plexica plugins config notes --tenant SLUG``);
            # ``host.config()`` returns them with the defaults filled in.
            config_schema=CONFIG_SCHEMA,
            # The web front end: a remote entry in the ``web`` namespace, presigned for browsers.
            storage=(WEB,),
            frontend=FRONTEND,
        )

    @hookimpl
    async def plexica_tenant_provisioned(self, tenant: TenantContext, host: Host) -> None:
        await publish_remote_entry(host)

    @hookimpl
    async def plexica_plugin_installed(self, tenant: TenantContext, version: str, host: Host) -> None:
        # While the tenant is provisioning its bucket does not exist yet: tenant_provisioned publishes.
        if tenant.status == "active":
            await publish_remote_entry(host, version)

    @hookimpl
    async def plexica_plugin_upgraded(
        self, tenant: TenantContext, from_version: str, to_version: str, host: Host
    ) -> None:
        await publish_remote_entry(host, to_version)

    @hookimpl
    def plexica_tenant_migrations(self) -> str:
        return str(Path(__file__).parent / "migrations")

    @hookimpl
    def plexica_subscriptions(self) -> Sequence[Subscription]:
        return [Subscription(event_type="core.tenant.created", handler=on_tenant_created)]

    @hookimpl
    def plexica_routes(self) -> Sequence[Any]:
        return routes
