"""The plugin object: its manifest, the event handler that records deliveries, and the worker's lifecycle."""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from plexica_plugin_webhooks.delivery import DISABLED_EVENT, DeliveryWorker
from plexica_plugin_webhooks.models import deliveries, endpoints
from plexica_plugin_webhooks.routes import MANAGE, build_routes
from plexica_plugin_webhooks.settings import WebhooksSettings
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

__all__ = ["VERSION", "WebhooksPlugin", "event_body", "matches"]

VERSION = "1.0.0"


def matches(pattern: str, event_type: str) -> bool:
    """Whether an endpoint's ``pattern`` (a type, ``prefix.*`` or ``*``) selects ``event_type``."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def event_body(event: Event) -> str:
    """The JSON a receiver gets: the event in CloudEvents structured form (without the user id)."""
    return json.dumps(
        {
            "specversion": event.specversion,
            "id": event.id,
            "type": event.type,
            "source": event.source,
            "time": event.time.isoformat(),
            "subject": event.subject,
            "datacontenttype": event.datacontenttype,
            "tenantid": event.tenantid,
            "workspaceid": event.workspaceid,
            "data": event.data,
        },
        separators=(",", ":"),
        default=str,
    )


class WebhooksPlugin:
    """Tenants' HTTPS endpoints, called with every event they subscribed to, signed and retried.

    Args:
        settings: the operator's delivery and SSRF settings; default: from ``PLEXICA_WEBHOOKS_*``
            variables (see :class:`WebhooksSettings`).
    """

    def __init__(self, settings: WebhooksSettings | None = None) -> None:
        self.settings = settings if settings is not None else WebhooksSettings.from_environ(os.environ)
        self.worker = DeliveryWorker(self.settings)

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(
            name="webhooks",
            version=VERSION,
            description="Signed, retried HTTPS deliveries of a tenant's events to its endpoints",
            permissions=(PermissionDef(key=MANAGE, description="Register, change and replay webhook endpoints"),),
            default_roles=(
                RoleDef(name="tenant_admin", permissions=(MANAGE,)),
                RoleDef(name="webhooks-admin", permissions=(MANAGE,), description="Manages the tenant's webhooks"),
            ),
            event_types=(
                EventTypeDef(
                    type=DISABLED_EVENT,
                    description="An endpoint was disabled after sustained delivery failures",
                    schema={
                        "type": "object",
                        "required": ["endpoint_id", "url", "reason", "consecutive_failures"],
                        "properties": {
                            "endpoint_id": {"type": "string"},
                            "url": {"type": "string"},
                            "reason": {"type": "string"},
                            "consecutive_failures": {"type": "integer"},
                            "failing_since": {"type": ["string", "null"]},
                        },
                    },
                ),
            ),
        )

    @hookimpl
    def plexica_tenant_migrations(self) -> str:
        return str(Path(__file__).parent / "migrations")

    @hookimpl
    def plexica_subscriptions(self, plugins: Sequence[str]) -> Sequence[Subscription]:
        # Every event a tenant could want: the core's and each loaded plugin's (this one's included).
        patterns = ["core.*", *(f"{name}.*" for name in plugins)]
        return [Subscription(event_type=p, handler=self.record, name=f"record:{p}") for p in dict.fromkeys(patterns)]

    @hookimpl
    def plexica_routes(self) -> Sequence[Any]:
        return build_routes(self.worker)

    @hookimpl
    async def plexica_host_started(self, host: Host) -> None:
        await self.worker.start(host)

    @hookimpl
    async def plexica_host_stopping(self) -> None:
        await self.worker.stop()

    @hookimpl
    def plexica_tenant_resumed(self, tenant: TenantContext) -> None:
        self.worker.notify(tenant)

    @hookimpl
    def plexica_tenant_suspended(self, tenant: TenantContext) -> None:
        self.worker.forget(tenant)

    @hookimpl
    def plexica_tenant_deleting(self, tenant: TenantContext) -> None:
        self.worker.forget(tenant)

    @hookimpl
    def plexica_plugin_uninstalled(self, tenant: TenantContext) -> None:
        self.worker.forget(tenant)

    async def record(self, event: Event, host: Host) -> None:
        """Record a pending delivery of ``event`` for each enabled endpoint that wants it.

        No network here: the handler's transaction holds only these inserts, and
        ``mark_processed`` (plus the (endpoint, event) unique key) makes a redelivery a no-op.
        The worker is woken after the commit.
        """
        if event.tenantid is None:  # a global event belongs to no tenant, so to no tenant's endpoints
            return
        recorded = False
        async with host.session() as session:
            if not await host.mark_processed(event, session=session):
                return
            rows = (
                await session.execute(sa.select(endpoints.c.id, endpoints.c.event_types).where(endpoints.c.enabled))
            ).all()
            wanted = [row.id for row in rows if any(matches(p, event.type) for p in row.event_types)]
            if wanted:
                now = dt.datetime.now(dt.UTC)
                body = event_body(event)
                await session.execute(
                    deliveries.insert(),
                    [
                        {
                            "id": str(uuid.uuid4()),
                            "endpoint_id": endpoint_id,
                            "event_id": event.id,
                            "event_type": event.type,
                            "body": body,
                            "status": "pending",
                            "attempts": 0,
                            "next_attempt_at": now,
                            "created_at": now,
                        }
                        for endpoint_id in wanted
                    ],
                )
                recorded = True
        if recorded:
            self.worker.notify(host.tenant)
