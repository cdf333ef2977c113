"""Core events written in the transaction of the change they report: the core services' only way to publish.

A service hands its open connection to :meth:`EventRecorder.record`, inside the ``async with``
that commits the change, so the change and its event commit (or roll back) together. The outbox
relay publishes the event after the commit; with the broker down the row waits and the caller's
request still succeeds; a crash between the commit and the publish leaves the row for the next
relay to send. Services get a recorder at construction and never see the platform or the bus.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Protocol, final

from sqlalchemy.ext.asyncio import AsyncConnection

from plexica.events.envelope import source_for
from plexica.events.outbox import Outbox
from plexica.events.registry import EventTypeRegistry
from plexica.observability.tracing import current_traceparent
from plexica_sdk.types import Event, TenantContext

__all__ = ["EventRecorder", "OutboxRecorder"]

#: The plugin name core events are registered under (``plexica.plugins.builtin.core``).
_CORE: Final = "core"


class EventRecorder(Protocol):
    """Writes a core event in ``conn``'s open transaction; it is published once that commits."""

    async def record(
        self,
        conn: AsyncConnection,
        event_type: str,
        data: Mapping[str, Any],
        ctx: TenantContext | None,
        *,
        subject: str | None = None,
    ) -> Event:
        """Validate and write the event (``ctx`` None: a global event, from a ``core`` connection).

        Raises:
            EventError: an unknown type, data failing its schema, or a connection of another tenant.
        """
        ...


@final
class OutboxRecorder:
    """The :class:`EventRecorder` of a running host: validates with the registry, writes to the outbox.

    The event is built exactly as ``Platform.publish`` builds one (source, tenant, workspace,
    user, trace id and traceparent from ``ctx`` and the current span), so consumers cannot tell
    the paths apart; its id and time are kept through the outbox.
    """

    def __init__(self, outbox: Outbox, registry: EventTypeRegistry) -> None:
        self._outbox = outbox
        self._registry = registry

    async def record(
        self,
        conn: AsyncConnection,
        event_type: str,
        data: Mapping[str, Any],
        ctx: TenantContext | None,
        *,
        subject: str | None = None,
    ) -> Event:
        payload = dict(data)
        self._registry.validate(_CORE, event_type, payload)
        event = Event(
            type=event_type,
            source=source_for(_CORE),
            data=payload,
            subject=subject,
            tenantid=ctx.tenant_id if ctx else None,
            workspaceid=ctx.workspace_id if ctx else None,
            userid=ctx.user.id if ctx and ctx.user else None,
            traceid=ctx.trace_id if ctx else None,
            traceparent=current_traceparent(),
        )
        await self._outbox.write_in(conn, ctx, [event])
        return event
