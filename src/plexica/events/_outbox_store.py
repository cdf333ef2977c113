"""Where outbox rows live and how a relay claims them: ``core.outbox`` on PostgreSQL, per-tenant on SQLite.

A tenant transaction writes its rows next to its own data (:meth:`OutboxStore.table`); a ``core``
transaction (the tenant lifecycle: ``core.tenant.*``) writes ``core.outbox`` on both databases,
since a tenant being provisioned or deleted may have no schema to hold them.

Both stores answer the same three questions for :class:`plexica.events.outbox.OutboxRelay`: which
*lanes* may have unsent rows, how to claim a lane's next rows so that no other relay publishes them
(or anything after them with the same key) at the same time, and how to prune.

* PostgreSQL: one lane, ``core``. A round locks some of ``core.outbox_shards`` with
  ``FOR UPDATE SKIP LOCKED`` and keeps them locked, in one transaction, while it publishes and
  marks their oldest rows; every row with a given key is in one shard, so two relays never
  publish one key's rows concurrently, and never the same row twice.
* SQLite: one lane per tenant file, plus the ``core`` lane for ``core.db``'s own outbox
  (``core_0005``). A row cannot stay locked there without blocking the file's writers, so a round
  leases the lane's oldest rows (``claimed_by``/``claimed_until``) in one short ``BEGIN IMMEDIATE``
  transaction, and refuses while another relay's lease on the lane is live.
"""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Final, final

import attrs
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from plexica.db.engine import Database
from plexica.events.models import core_outbox, outbox_shards, processed_events, tenant_outbox

__all__ = ["CORE_LANE", "Claimed", "OutboxStore", "Outcome", "PostgresOutboxStore", "SqliteOutboxStore", "utcnow"]

log = logging.getLogger("plexica.events.outbox")

CORE_LANE: Final = "core"
#: Shards one PostgreSQL round takes at most: the rest stay free for other relays.
_SHARDS_PER_CLAIM: Final = 16
_MAX_ERROR: Final = 2000

#: The tenant schemas to sweep and prune (not deleted ones).
Schemas = Callable[[], Awaitable[Sequence[str]]]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@attrs.frozen
class Claimed:
    """One outbox row taken by a round: its order, event id, record key and stored envelope."""

    seq: int
    event_id: str
    key: str | None
    envelope: str


@attrs.define
class Outcome:
    """What publishing a claimed batch came to.

    ``sent`` rows reached the broker; ``dropped`` rows never can (their tenant is gone, say) and are
    closed with their error; the rest stay pending with ``error`` recorded, for a later round.
    """

    sent: list[int] = attrs.Factory(list)
    dropped: dict[int, str] = attrs.Factory(dict)
    error: str | None = None


Publish = Callable[[list[Claimed]], Awaitable[Outcome]]


async def _mark(conn: AsyncConnection, table: sa.Table, rows: list[Claimed], outcome: Outcome) -> None:
    now = utcnow()
    c = table.c
    sent = set(outcome.sent)
    if sent:
        await conn.execute(
            table.update()
            .where(c.seq.in_(sorted(sent)))
            .values(sent_at=now, attempts=c.attempts + 1, claimed_by=None, claimed_until=None)
        )
    for seq, error in outcome.dropped.items():
        await conn.execute(
            table.update()
            .where(c.seq == seq)
            .values(
                sent_at=now,
                attempts=c.attempts + 1,
                last_error=f"dropped: {error}"[:_MAX_ERROR],
                claimed_by=None,
                claimed_until=None,
            )
        )
    pending = [row.seq for row in rows if row.seq not in sent and row.seq not in outcome.dropped]
    if pending:
        await conn.execute(
            table.update()
            .where(c.seq.in_(pending))
            .values(
                attempts=c.attempts + 1,
                last_error=(outcome.error or "not published")[:_MAX_ERROR],
                claimed_by=None,
                claimed_until=None,
            )
        )


def _claimed(rows: Sequence[sa.Row[Any, Any, Any, Any]]) -> list[Claimed]:
    return [Claimed(seq, event_id, key, envelope) for seq, event_id, key, envelope in rows]


class OutboxStore(abc.ABC):
    """The outbox of one database: where rows are written, and how relays claim and prune them."""

    def __init__(self, db: Database, schemas: Schemas) -> None:
        self._db = db
        self._schemas = schemas

    @abc.abstractmethod
    def table(self) -> sa.Table:
        """The table a tenant session writes its rows to."""

    @abc.abstractmethod
    def lane_of(self, schema: str) -> str:
        """The lane whose relay round publishes rows written in the tenant ``schema``."""

    @abc.abstractmethod
    async def pending_lanes(self) -> set[str]:
        """Lanes that may have unsent rows (a sweep: other processes' rows, or left by a crash)."""

    @abc.abstractmethod
    async def relay(self, lane: str, limit: int, owner: str, publish: Publish) -> int | None:
        """Claim up to ``limit`` of ``lane``'s oldest unsent rows, ``publish`` them and mark the outcome.

        Returns:
            How many rows were claimed (0: the lane is drained), or ``None`` when another relay
            holds the lane or the lane no longer exists.
        """

    @abc.abstractmethod
    async def prune_outbox(self, before: dt.datetime) -> int:
        """Delete rows sent before ``before``; return how many went."""

    @abc.abstractmethod
    async def oldest_unsent(self) -> dt.datetime | None:
        """When the oldest committed, unsent row was written (None: nothing waits); the relay's lag."""

    async def prune_processed(self, before: dt.datetime) -> int:
        """Delete processed-event ids recorded before ``before`` in every tenant; return how many went."""
        removed = 0
        for schema in await self._schemas():
            if not await self._db.schema_exists(schema):
                continue
            try:
                async with self._db.tenant_connection(schema) as conn:
                    result = await conn.execute(
                        processed_events.delete().where(processed_events.c.processed_at < before)
                    )
                removed += result.rowcount
            except sa.exc.DBAPIError as exc:  # a tenant not migrated to tenant_0005 yet: nothing to prune
                log.debug("pruning processed events of %s failed: %s", schema, type(exc.orig).__name__)
        return removed


@final
class PostgresOutboxStore(OutboxStore):
    """``core.outbox``, claimed by shard with ``FOR UPDATE SKIP LOCKED``."""

    def table(self) -> sa.Table:
        return core_outbox

    def lane_of(self, schema: str) -> str:
        return CORE_LANE

    async def pending_lanes(self) -> set[str]:
        return {CORE_LANE}  # the claim query itself finds the pending shards

    async def relay(self, lane: str, limit: int, owner: str, publish: Publish) -> int | None:
        o, s = core_outbox.c, outbox_shards.c
        pending = sa.exists().where(o.shard == s.shard, o.sent_at.is_(None))
        async with self._db.core_connection() as conn:
            shards = (
                await conn.scalars(
                    sa.select(s.shard)
                    .where(pending)
                    .order_by(sa.func.random())
                    .limit(_SHARDS_PER_CLAIM)
                    .with_for_update(skip_locked=True, of=outbox_shards)
                )
            ).all()
            if not shards:
                return 0
            result = await conn.execute(
                sa.select(o.seq, o.event_id, o.key, o.envelope)
                .where(o.shard.in_(shards), o.sent_at.is_(None))
                .order_by(o.seq)
                .limit(limit)
            )
            rows = _claimed(result.all())
            if rows:
                # The shards stay locked while the rows go out: a crash releases them with the connection.
                await _mark(conn, core_outbox, rows, await publish(rows))
        return len(rows)

    async def prune_outbox(self, before: dt.datetime) -> int:
        async with self._db.core_connection() as conn:
            result = await conn.execute(core_outbox.delete().where(core_outbox.c.sent_at < before))
        return result.rowcount

    async def oldest_unsent(self) -> dt.datetime | None:
        c = core_outbox.c
        async with self._db.core_connection() as conn:
            return _aware(await conn.scalar(sa.select(sa.func.min(c.created_at)).where(c.sent_at.is_(None))))


@final
class SqliteOutboxStore(OutboxStore):
    """An ``outbox`` table in each tenant's file and one in ``core.db``, claimed by lease.

    Args:
        lease_seconds: how long a claim keeps other relays off the lane; longer than a publish can take.
    """

    def __init__(self, db: Database, schemas: Schemas, *, lease_seconds: float) -> None:
        super().__init__(db, schemas)
        self._lease = dt.timedelta(seconds=lease_seconds)

    def table(self) -> sa.Table:
        return tenant_outbox

    def lane_of(self, schema: str) -> str:
        return schema

    @staticmethod
    def _table(lane: str) -> sa.Table:
        return core_outbox if lane == CORE_LANE else tenant_outbox

    @contextlib.asynccontextmanager
    async def _connect(self, lane: str) -> AsyncIterator[AsyncConnection]:
        """A transaction on ``lane``'s file: ``core.db`` for the core lane, else the tenant's."""
        if lane == CORE_LANE:
            async with self._db.core_connection() as conn:
                yield conn
        else:
            async with self._db.tenant_connection(lane) as conn:
                yield conn

    async def _lanes(self) -> list[str]:
        """The core lane, then every existing tenant file."""
        return [CORE_LANE] + [schema for schema in await self._schemas() if await self._db.schema_exists(schema)]

    async def pending_lanes(self) -> set[str]:
        lanes = set()
        for lane in await self._lanes():
            c = self._table(lane).c
            try:
                async with self._connect(lane) as conn:
                    if await conn.scalar(sa.select(sa.literal(1)).where(c.sent_at.is_(None)).limit(1)):
                        lanes.add(lane)
            except sa.exc.DBAPIError as exc:  # not migrated to tenant_0005 (core_0005) yet: it has no outbox
                log.debug("outbox sweep skipped %s: %s", lane, type(exc.orig).__name__)
        return lanes

    async def relay(self, lane: str, limit: int, owner: str, publish: Publish) -> int | None:
        if lane != CORE_LANE and not await self._db.schema_exists(lane):  # the tenant was deleted, its outbox with it
            return None
        table = self._table(lane)
        c = table.c
        now = utcnow()
        async with self._connect(lane) as conn:  # BEGIN IMMEDIATE: one claimer at a time
            held = sa.and_(c.sent_at.is_(None), c.claimed_by.is_not(None), c.claimed_by != owner, c.claimed_until > now)
            if await conn.scalar(sa.select(sa.literal(1)).where(held).limit(1)):
                return None
            result = await conn.execute(
                sa.select(c.seq, c.event_id, c.key, c.envelope).where(c.sent_at.is_(None)).order_by(c.seq).limit(limit)
            )
            rows = _claimed(result.all())
            if not rows:
                return 0
            await conn.execute(
                table.update()
                .where(c.seq.in_([row.seq for row in rows]))
                .values(claimed_by=owner, claimed_until=now + self._lease)
            )
        try:
            outcome = await publish(rows)
        except BaseException as exc:  # cancelled mid-publish: give the lease back
            outcome = Outcome(error=f"{type(exc).__name__}: interrupted")
            async with self._connect(lane) as conn:
                await _mark(conn, table, rows, outcome)
            raise
        async with self._connect(lane) as conn:
            await _mark(conn, table, rows, outcome)
        return len(rows)

    async def prune_outbox(self, before: dt.datetime) -> int:
        removed = 0
        for lane in await self._lanes():
            table = self._table(lane)
            try:
                async with self._connect(lane) as conn:
                    result = await conn.execute(table.delete().where(table.c.sent_at < before))
                removed += result.rowcount
            except sa.exc.DBAPIError as exc:
                log.debug("pruning the outbox of %s failed: %s", lane, type(exc.orig).__name__)
        return removed

    async def oldest_unsent(self) -> dt.datetime | None:
        """Opens every tenant's file: the metrics call it behind their refresh interval."""
        oldest = None
        for lane in await self._lanes():
            c = self._table(lane).c
            try:
                async with self._connect(lane) as conn:
                    found = _aware(await conn.scalar(sa.select(sa.func.min(c.created_at)).where(c.sent_at.is_(None))))
            except sa.exc.DBAPIError:  # not migrated to tenant_0005 (core_0005) yet: it has no outbox
                continue
            if found is not None and (oldest is None or found < oldest):
                oldest = found
        return oldest


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite returns naive datetimes for timezone-aware columns; the outbox stores UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value
