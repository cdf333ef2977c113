"""Every query of the audit table: append, look up, purge. Nothing here updates an entry.

The trail is append-only by construction: this module is the only code that touches the table,
and it offers no update and no delete but the retention purge. On PostgreSQL a trigger (see the
migration) refuses UPDATE and TRUNCATE, and DELETE outside a purge's transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, cast

import attrs
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from plexica_plugin_audit_log.models import entries
from plexica_sdk import Event

__all__ = ["Filters", "append", "page", "purge", "to_json"]


def utc(value: dt.datetime) -> dt.datetime:
    """``value`` in UTC; a naive value (SQLite hands those back) is taken as UTC already."""
    return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)


@attrs.frozen(kw_only=True)
class Filters:
    """What a query or an export keeps: each set field narrows the result.

    Attributes:
        actor: the user id that caused the event (``Event.userid``).
        type: an exact event type, or a prefix ending in ``.*`` (``notes.*``).
        since: occurred at or after.
        until: occurred strictly before.
    """

    actor: str | None = None
    type: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    def apply(self, query: sa.Select[Any]) -> sa.Select[Any]:
        if self.actor is not None:
            query = query.where(entries.c.actor == self.actor)
        if self.type is not None:
            if self.type.endswith(".*"):
                prefix = self.type[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                query = query.where(entries.c.type.like(prefix + "%", escape="\\"))
            else:
                query = query.where(entries.c.type == self.type)
        if self.since is not None:
            query = query.where(entries.c.occurred_at >= utc(self.since))
        if self.until is not None:
            query = query.where(entries.c.occurred_at < utc(self.until))
        return query


async def append(session: AsyncSession, event: Event) -> None:
    """Record ``event``; the unique ``event_id`` makes a second copy fail rather than duplicate."""
    await session.execute(
        entries.insert().values(
            event_id=event.id,
            type=event.type,
            source=event.source,
            actor=event.userid,
            subject=event.subject,
            workspace_id=event.workspaceid,
            trace_id=event.traceid,
            occurred_at=utc(event.time),
            recorded_at=dt.datetime.now(dt.UTC),
            data=event.data,
        )
    )


async def page(
    session: AsyncSession, filters: Filters, *, limit: int, after: int | None = None, newest_first: bool = True
) -> Sequence[Any]:
    """Up to ``limit`` entries past the cursor ``after`` (a ``seq``), in ``seq`` order."""
    query = filters.apply(sa.select(entries))
    if newest_first:
        if after is not None:
            query = query.where(entries.c.seq < after)
        query = query.order_by(entries.c.seq.desc())
    else:
        if after is not None:
            query = query.where(entries.c.seq > after)
        query = query.order_by(entries.c.seq.asc())
    rows: Sequence[Any] = (await session.execute(query.limit(limit))).all()
    return rows


async def purge(session: AsyncSession, before: dt.datetime) -> int:
    """Delete the entries that occurred before ``before``: the retention purge, the only delete."""
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        # The trigger lets a DELETE through only in a transaction that says it is a purge.
        await session.execute(sa.text("SELECT set_config('audit_log.purge', 'on', true)"))
    result = cast(
        "sa.CursorResult[Any]", await session.execute(entries.delete().where(entries.c.occurred_at < utc(before)))
    )
    return int(result.rowcount or 0)


def to_json(row: Any) -> dict[str, Any]:
    """An entry as the routes and the export show it."""
    return {
        "seq": row.seq,
        "id": row.event_id,
        "type": row.type,
        "source": row.source,
        "actor": row.actor,
        "subject": row.subject,
        "workspace_id": row.workspace_id,
        "trace_id": row.trace_id,
        "occurred_at": utc(row.occurred_at).isoformat(),
        "recorded_at": utc(row.recorded_at).isoformat(),
        "data": row.data,
    }
