"""Lifecycle hooks a remote plugin missed while it was down: written to the outbox, delivered when it is back.

An embedded plugin cannot be "down", so the tenant lifecycle calls its hooks inline. A remote one
can: when a lifecycle hook cannot reach it (no connection, breaker open, no answer in time — not
when it answers an error, which fails the operation exactly as embedded), the call is written as a
global ``core.plugin.hook-deferred`` event through the core outbox, in its own transaction, and
the operation goes on. The remote plugin's proxy subscribes to that event type (subscription
``plexica-deferred-hooks``), so the event bus delivers the call again with its usual retries and
backoff (``deferred_attempts`` per registration) and finally its dead-letter queue, from which
``plexica events dlq replay`` sends it once more. Nothing is dropped: at least once, like events.

Deferred: :data:`DEFERRABLE_HOOKS`. Not deferred, so the operation stops with a 503 and the
operator's retry calls them again (their point is to run before data is removed):
``plexica_tenant_deleting`` and ``plexica_plugin_uninstalled``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final, Protocol, final

from sqlalchemy.ext.asyncio import AsyncConnection

from plexica.events.recorder import EventRecorder
from plexica_sdk.converter import unstructure
from plexica_sdk.types import TenantContext

__all__ = [
    "DEFERRABLE_HOOKS",
    "DEFERRED_EVENT_TYPE",
    "DEFERRED_SUBSCRIPTION",
    "CoreConnections",
    "HookDeferrer",
]

logger = logging.getLogger(__name__)

#: The global core event that carries a deferred hook call.
DEFERRED_EVENT_TYPE: Final = "core.plugin.hook-deferred"
#: The name of each remote proxy's subscription to it.
DEFERRED_SUBSCRIPTION: Final = "plexica-deferred-hooks"
DEFERRABLE_HOOKS: Final = frozenset(
    {
        "plexica_tenant_provisioned",
        "plexica_tenant_suspended",
        "plexica_tenant_resumed",
        "plexica_plugin_installed",
        "plexica_plugin_upgraded",
    }
)


class CoreConnections(Protocol):
    """Opens a transaction on ``core`` (``Database.core_connection``)."""

    def core_connection(self) -> Any: ...


@final
class HookDeferrer:
    """Writes deferred hook calls to the core outbox (``Platform`` binds one to every remote proxy)."""

    def __init__(self, db: CoreConnections, recorder: EventRecorder) -> None:
        self._db = db
        self._recorder = recorder

    async def defer(self, plugin: str, hook: str, args: Mapping[str, Any], ctx: TenantContext, reason: str) -> None:
        """Record one hook call for later delivery; it commits before this returns."""
        data = {"plugin": plugin, "hook": hook, "args": unstructure(dict(args)), "tenant": unstructure(ctx)}
        conn: AsyncConnection
        async with self._db.core_connection() as conn:
            await self._recorder.record(conn, DEFERRED_EVENT_TYPE, {**data, "reason": reason[:500]}, None)
        logger.warning(
            "remote plugin unavailable: lifecycle hook deferred",
            extra={"plugin": plugin, "hook": hook, "tenant": ctx.slug, "error": reason},
        )
