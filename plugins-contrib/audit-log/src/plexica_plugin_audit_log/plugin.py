"""The plugin object: its manifest, a subscription to every event, retention settings."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from plexica_plugin_audit_log import repository
from plexica_plugin_audit_log.retention import maybe_purge
from plexica_plugin_audit_log.routes import EXPORT, PURGE, READ, routes
from plexica_sdk import Event, Host, PermissionDef, PluginManifest, RoleDef, Subscription, hookimpl

NAME: Final = "audit-log"
_OWNER_RE: Final = re.compile(r"^[a-z][a-z0-9-]*\Z")

#: The per-tenant configuration (``plexica plugins config audit-log --tenant SLUG``).
CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "retention_days": {
            "type": "integer",
            "minimum": 1,
            "maximum": 36500,
            "default": 365,
            "description": "Entries whose event occurred more than this many days ago are purged",
        },
        "purge_interval_seconds": {
            "type": "integer",
            "minimum": 1,
            "maximum": 86400,
            "default": 3600,
            "description": "The automatic purge runs at most this often per tenant (on a recorded event)",
        },
    },
    "additionalProperties": False,
}


async def record(event: Event, host: Host) -> None:
    """Append ``event`` to its tenant's trail, once.

    Delivery is at least once: ``mark_processed`` (and the unique event id) make a redelivery a
    no-op. Then the retention purge runs if it is due.
    """
    if event.tenantid is None:
        return  # a global event belongs to no tenant's trail
    async with host.session() as session:
        if not await host.mark_processed(event, session=session):
            return
        await repository.append(session, event)
    await maybe_purge(host)


def patterns(plugins: Sequence[str]) -> list[str]:
    """The subscription patterns that cover every event type: ``core.*`` and each plugin's ``{name}.*``.

    Every event type starts with its owner (``core`` or the publishing plugin), and the host
    names each loaded plugin to ``plexica_subscriptions``: this is "every event", exactly.
    """
    owners = dict.fromkeys(["core", *plugins])
    return [f"{owner}.*" for owner in owners if owner != NAME and _OWNER_RE.match(owner)]


class AuditLogPlugin:
    """A per-tenant, append-only audit trail of every event."""

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(
            name=NAME,
            version="1.0.0",
            description="Per-tenant, append-only audit trail of every core and plugin event",
            permissions=(
                PermissionDef(key=READ, description="Query the audit trail"),
                PermissionDef(key=EXPORT, description="Export the audit trail as JSON lines"),
                PermissionDef(key=PURGE, description="Run the retention purge now"),
            ),
            # tenant_admin holds every permission already; auditors read and export, nothing else.
            default_roles=(RoleDef(name="auditor", permissions=(READ, EXPORT)),),
            config_schema=CONFIG_SCHEMA,
        )

    @hookimpl
    def plexica_tenant_migrations(self) -> str:
        return str(Path(__file__).parent / "migrations")

    @hookimpl
    def plexica_subscriptions(self, plugins: Sequence[str]) -> Sequence[Subscription]:
        return [Subscription(event_type=p, handler=record, name=f"record:{p}") for p in patterns(plugins)]

    @hookimpl
    def plexica_routes(self) -> Sequence[Any]:
        return routes
