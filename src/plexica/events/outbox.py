"""The transactional outbox: events written in a tenant's transaction, published after it commits.

``Outbox.write`` adds the events to the outbox in the caller's transaction (inserted together as
it commits), so they commit or roll back with the caller's own writes; nothing reaches the broker
before the commit, and nothing at all after a rollback. ``OutboxRelay`` publishes committed rows in order with
``EventBus.publish_many(..., validate=False)``, keeping each event's id and time, and marks them
sent. A commit in this process wakes the relay at once; rows other processes wrote are found by
polling. With the broker down the rows wait, in order, and go out once it is back. The relay is
at-least-once: a crash between publishing and marking publishes those rows again, which handlers
absorb with ``Host.mark_processed``. Where rows live and how relays claim them is in
:mod:`plexica.events._outbox_store`.

``Outbox.write_in`` is the same for a Core ``AsyncConnection`` (what the core services use,
through :class:`plexica.events.recorder.OutboxRecorder`): the rows are inserted at once in the
connection's transaction, and the relays are woken when the connection goes back to its pool,
which is after its COMMIT (or ROLLBACK: a wake for nothing costs one empty claim).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import uuid
import weakref
import zlib
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Final, Self, final

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.pool import Pool

from plexica.db.engine import Database
from plexica.events._outbox_store import (
    CORE_LANE,
    Claimed,
    OutboxStore,
    Outcome,
    PostgresOutboxStore,
    Schemas,
    SqliteOutboxStore,
    utcnow,
)
from plexica.events.bus import EventBus
from plexica.events.dlq import describe_error
from plexica.events.models import SHARDS, core_outbox, processed_events
from plexica.observability.tracing import relay_spans
from plexica.settings import EventSettings
from plexica_sdk.errors import BackendUnavailableError, EventError
from plexica_sdk.types import Event, TenantContext

__all__ = ["Outbox", "OutboxRelay", "from_envelope", "mark_processed", "to_envelope"]

log = logging.getLogger(__name__)

_PENDING: Final = "plexica.outbox.pending"  # session.info key: this transaction's ``_Pending``
_WAKE: Final = "plexica.outbox.wake"  # a pooled connection's info: lanes to wake once it is checked in


def to_envelope(event: Event) -> str:
    """The stored form of ``event``: its attributes and data as one JSON object.

    Raises:
        EventError: ``data`` is not JSON (or holds NaN).
    """
    try:
        return json.dumps(
            {
                "id": event.id,
                "source": event.source,
                "type": event.type,
                "specversion": event.specversion,
                "time": event.time.isoformat(),
                "subject": event.subject,
                "datacontenttype": event.datacontenttype,
                "tenantid": event.tenantid,
                "workspaceid": event.workspaceid,
                "userid": event.userid,
                "traceid": event.traceid,
                "schemaversion": event.schemaversion,
                "traceparent": event.traceparent,  # the request's span: the relay continues its trace
                "data": event.data,
            },
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
    except (TypeError, ValueError, RecursionError) as exc:
        raise EventError(f"event {event.id} cannot be encoded: {exc}", event_type=event.type) from exc


def from_envelope(text: str) -> Event:
    """The event :func:`to_envelope` stored."""
    fields: dict[str, Any] = json.loads(text)
    fields["time"] = dt.datetime.fromisoformat(fields["time"])
    return Event(**fields)


def _shard(key: str | None, event_id: str) -> int:
    # Every row with the same key lands in the same shard; keyless rows spread by id.
    return zlib.crc32((key if key is not None else event_id).encode()) % SHARDS


def _bound_schema(session: AsyncSession) -> str | None:
    translate = session.get_bind().get_execution_options().get("schema_translate_map")
    return None if not translate else translate.get(None)


def _connection_schema(conn: AsyncConnection) -> str | None:
    """The tenant schema ``conn`` is bound to; ``None`` for a ``core`` connection."""
    translate = (
        conn.sync_connection.get_execution_options().get("schema_translate_map") if conn.sync_connection else None
    )
    return None if not translate else translate.get(None)


def _check_session(session: object, ctx: TenantContext) -> AsyncSession:
    if not isinstance(session, AsyncSession):
        raise EventError(f"session must be the AsyncSession of host.session(), not {type(session).__name__}")
    if _bound_schema(session) != ctx.schema:
        raise EventError(f"the session is not bound to tenant {ctx.slug!r}'s schema")
    return session


@final
class Outbox:
    """Writes events to the outbox inside a tenant session; owns the store the relay reads.

    Args:
        db: the database (its dialect picks where rows live).
        bus: the bus whose topic layout gives each event its key.
        schemas: the schemas of tenants that are not deleted (sweeps and pruning).
        lease_seconds: SQLite only: how long a relay's claim keeps others off a tenant's rows.
    """

    def __init__(self, db: Database, bus: EventBus, schemas: Schemas, *, lease_seconds: float = 120.0) -> None:
        self._bus = bus
        self.store: OutboxStore = (
            PostgresOutboxStore(db, schemas)
            if db.dialect == "postgresql"
            else SqliteOutboxStore(db, schemas, lease_seconds=lease_seconds)
        )
        self._relays: list[OutboxRelay] = []
        self._pools: weakref.WeakSet[Pool] = weakref.WeakSet()  # pools whose check-ins wake the relays

    def attach(self, relay: OutboxRelay) -> None:
        """Wake ``relay`` when a transaction that wrote rows commits in this process."""
        self._relays.append(relay)

    async def write(self, session: object, ctx: TenantContext, events: Sequence[Event]) -> None:
        """Add ``events`` of the tenant ``ctx`` to the outbox in ``session``'s transaction.

        The caller validated them (``EventTypeRegistry.validate``); this checks that the session is
        the tenant's and that the data is JSON.

        Raises:
            EventError: the session is not a session of ``ctx``'s schema, or an event's data is not JSON.
        """
        session = _check_session(session, ctx)
        rows = self.rows_for(ctx, events)
        if not rows:
            return
        self._pending(session).add(self.store.lane_of(ctx.schema), rows, session.sync_session.get_nested_transaction())

    async def write_in(self, conn: AsyncConnection, ctx: TenantContext | None, events: Sequence[Event]) -> None:
        """Insert ``events`` into the outbox now, in ``conn``'s open transaction.

        A tenant connection (bound to ``ctx``'s schema) writes where that tenant's rows live; a
        ``core`` connection writes ``core.outbox`` (events of a tenant being provisioned or
        deleted, or of none). They commit or roll back with ``conn``'s transaction; the relays
        are woken when ``conn`` is released.

        Raises:
            EventError: a tenant connection of another schema than ``ctx``'s (or without ``ctx``),
                an event of another tenant, or data that is not JSON.
        """
        schema = _connection_schema(conn)
        if schema is None:
            table, lane = core_outbox, CORE_LANE
        elif ctx is None or ctx.schema != schema:
            raise EventError(f"the connection is bound to schema {schema!r}, not to the event's tenant")
        else:
            table, lane = self.store.table(), self.store.lane_of(schema)
        rows = self.rows_for(ctx, events)
        if not rows:
            return
        await conn.execute(table.insert(), rows)
        self._wake_on_release(conn, lane)

    def rows_for(self, ctx: TenantContext | None, events: Sequence[Event]) -> list[dict[str, Any]]:
        """The outbox rows of ``events`` (validated by the caller), as ``write`` and ``write_in`` insert them.

        Public for remote plugins, whose sessions insert the row the host built (``plexica.remote.db_roles``).

        Raises:
            EventError: an event of another tenant than ``ctx``, or data that is not JSON.
        """
        now = utcnow()
        topics = self._bus.topics
        rows = []
        for event in events:
            if ctx is not None and event.tenantid != ctx.tenant_id:
                raise EventError(f"event {event.id} is not for tenant {ctx.slug!r}", event_type=event.type)
            key = topics.default_key(event)
            rows.append(
                {
                    "event_id": event.id,
                    "tenant_id": event.tenantid,
                    "event_type": event.type,
                    "key": key,
                    "shard": _shard(key, event.id),
                    "envelope": to_envelope(event),
                    "created_at": now,
                    "attempts": 0,
                }
            )
        return rows

    def _wake_on_release(self, conn: AsyncConnection, lane: str) -> None:
        # Core connections have no after-commit event, but the pool's check-in comes after the
        # COMMIT (or ROLLBACK) is done; a relay woken any earlier could miss the row on PostgreSQL.
        lanes: set[str] = conn.info.setdefault(_WAKE, set())
        lanes.add(lane)
        pool = conn.sync_engine.pool
        if pool not in self._pools:
            self._pools.add(pool)
            sa_event.listen(pool, "checkin", self._checked_in)

    def _checked_in(self, _dbapi_connection: object, record: Any) -> None:
        lanes: set[str] | None = record.info.pop(_WAKE, None) if record is not None else None
        if lanes:
            for relay in self._relays:
                relay.wake(lanes)

    def _pending(self, session: AsyncSession) -> _Pending:
        sync = session.sync_session
        pending: _Pending | None = sync.info.get(_PENDING)
        if pending is None:
            pending = sync.info[_PENDING] = _Pending(sync, self.store.table(), self._relays)
        return pending


@final
class _Pending:
    """The outbox rows of a session's current transaction, inserted together when it commits.

    One multi-row insert at commit instead of one statement per ``publish`` (the statement costs
    far more than the row); it runs inside the commit, so it is still part of the transaction.
    After the commit the relays are woken for the lanes written; a rollback forgets everything.
    One per session, listening for the session's whole life (listeners cannot be removed while
    the session dispatches the very event).
    """

    def __init__(self, sync: Session, table: sa.Table, relays: list[OutboxRelay]) -> None:
        self._table = table
        self._relays = relays
        # Each row with the savepoint it was published in (None: the transaction itself): rolling
        # a savepoint back drops its rows, and the rest are inserted in publishing order.
        self._rows: list[tuple[SessionTransaction | None, dict[str, Any]]] = []
        self._lanes: set[str] = set()
        sa_event.listen(sync, "before_commit", self._insert)
        sa_event.listen(sync, "after_commit", self._committed)
        sa_event.listen(sync, "after_rollback", self._rolled_back)

    def add(self, lane: str, rows: list[dict[str, Any]], savepoint: SessionTransaction | None) -> None:
        self._lanes.add(lane)
        self._rows.extend((savepoint, row) for row in rows)

    def _insert(self, session: Session) -> None:
        if self._rows and not session.in_nested_transaction():  # in the commit's greenlet: sync SQL is allowed
            rows, self._rows = self._rows, []
            session.execute(self._table.insert(), [row for _, row in rows])

    def _committed(self, session: Session) -> None:
        if session.in_nested_transaction() or not self._lanes:  # a savepoint: the transaction goes on
            return
        lanes, self._lanes = self._lanes, set()
        for relay in self._relays:
            relay.wake(lanes)

    def _rolled_back(self, session: Session) -> None:
        savepoint = session.get_nested_transaction()
        if savepoint is None:
            self._rows, self._lanes = [], set()
        else:
            self._rows = [(where, row) for where, row in self._rows if not _within(where, savepoint)]


def _within(where: SessionTransaction | None, savepoint: SessionTransaction) -> bool:
    while where is not None:
        if where is savepoint:
            return True
        where = where.parent
    return False


@final
class OutboxRelay:
    """Publishes committed outbox rows, in order, and marks them sent; prunes old rows.

    Use it as an async context manager (the platform's lifespan does): it runs as one background
    task and, on exit, finishes the round in flight.

    Args:
        outbox: the outbox whose store to read.
        bus: where to publish (started before the relay, stopped after it).
        settings: ``settings.outbox`` holds batch size, polling, retention; ``kafka.io_timeout_seconds``
            bounds a publish.
        on_published: called with the events the bus accepted (the metrics count them here, not
            at write time, so a rolled-back write counts nothing).
    """

    def __init__(
        self,
        outbox: Outbox,
        bus: EventBus,
        settings: EventSettings,
        *,
        on_published: Callable[[Sequence[Event]], None] | None = None,
    ) -> None:
        self._store = outbox.store
        self._bus = bus
        self._on_published = on_published
        self._settings = settings.outbox
        self._owner = f"relay-{uuid.uuid4().hex[:16]}"
        self._dirty: set[str] = set()
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._idle = asyncio.Event()
        self._sweep_now = True  # at start: rows left by a crash, or written while no relay ran
        self._task: asyncio.Task[None] | None = None
        self.published = 0  # rows this relay marked sent (metrics, tests)
        outbox.attach(self)

    def wake(self, lanes: set[str]) -> None:
        """Have the relay look at ``lanes`` now (called after a commit that wrote rows)."""
        self._dirty |= lanes
        self._idle.clear()
        self._wakeup.set()

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name="plexica-outbox-relay")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stopping.set()
        self._wakeup.set()
        if self._task is not None:
            task, self._task = self._task, None
            await task

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until the relay found nothing left to publish (tests, benchmarks, shutdown scripts).

        Raises:
            TimeoutError: rows were still pending after ``timeout`` seconds (the broker is down, say).
        """
        self._idle.clear()
        self._sweep_now = True
        self._wakeup.set()
        async with asyncio.timeout(timeout):
            await self._idle.wait()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        s = self._settings
        next_prune = loop.time() + s.prune_interval_seconds
        # PostgreSQL's sweep is the claim query itself: every poll. SQLite's opens every tenant file:
        # rarely, since each process's own commits wake its relay directly.
        every_poll = isinstance(self._store, PostgresOutboxStore)
        next_sweep = loop.time()
        backoff = 0.0
        while not self._stopping.is_set():
            self._wakeup.clear()
            lanes: set[str] = set()
            if self._sweep_now or every_poll or loop.time() >= next_sweep:
                self._sweep_now = False
                next_sweep = loop.time() + s.sweep_seconds
                try:
                    lanes = await self._store.pending_lanes()
                except Exception as exc:  # the database is down: try again later
                    log.warning("outbox sweep failed: %s", describe_error(exc))
            lanes |= self._dirty
            self._dirty = set()
            failed: set[str] = set()
            for lane in sorted(lanes):
                if self._stopping.is_set():
                    failed.add(lane)
                    continue
                if not await self._relay_lane(lane):
                    failed.add(lane)
            self._dirty |= failed
            if loop.time() >= next_prune:
                next_prune = loop.time() + s.prune_interval_seconds
                await self._prune()
            if failed:
                backoff = min(max(backoff * 2, 0.1), 5.0)
                timeout = backoff
            else:
                backoff = 0.0
                if not self._dirty and not self._sweep_now:
                    self._idle.set()
                timeout = s.poll_seconds
            if not self._wakeup.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wakeup.wait()

    async def _relay_lane(self, lane: str) -> bool:
        """Publish ``lane`` until it is drained; ``False`` if rows remain (broker down, lane busy)."""
        outcomes: list[Outcome] = []

        async def publish(rows: list[Claimed]) -> Outcome:
            outcomes.append(outcome := await self._publish(rows))
            return outcome

        while not self._stopping.is_set():
            outcomes.clear()
            try:
                claimed = await self._store.relay(lane, self._settings.batch_size, self._owner, publish)
            except Exception as exc:  # the database failed us: leave the rows for a later round
                log.warning("outbox relay of %s failed: %s", lane, describe_error(exc))
                return False
            if not claimed:  # drained, or another relay holds the lane and will drain it
                return True
            if not outcomes:
                return False
            self.published += len(outcomes[0].sent)
            if outcomes[0].error is not None:
                return False
        return False

    async def _publish(self, rows: list[Claimed]) -> Outcome:
        events: list[Event] = []
        outcome = Outcome()
        for row in rows:
            try:
                events.append(from_envelope(row.envelope))
            except (ValueError, TypeError, KeyError) as exc:  # a corrupt row must not block its lane
                outcome.dropped[row.seq] = f"unreadable envelope: {type(exc).__name__}"
                log.error("outbox row %d (event %s) is unreadable; dropped", row.seq, row.event_id)
        good = [row for row in rows if row.seq not in outcome.dropped]
        try:
            with relay_spans(events) as traced:  # each stored trace continues through its relay span
                await self._bus.publish_many(traced, keys=[row.key for row in good], validate=False)
        except BackendUnavailableError as exc:
            outcome.error = describe_error(exc)
            log.warning("outbox relay: %d events wait for the broker: %s", len(good), outcome.error)
            return outcome
        except EventError:  # one event cannot go (its tenant was deleted): find it, keep order
            return await self._publish_one_by_one(good, events, outcome)
        outcome.sent = [row.seq for row in good]
        if self._on_published is not None:
            self._on_published(events)
        return outcome

    async def _publish_one_by_one(self, rows: list[Claimed], events: list[Event], outcome: Outcome) -> Outcome:
        for row, event in zip(rows, events, strict=True):
            try:
                await self._bus.publish_many([event], keys=[row.key], validate=False)
            except BackendUnavailableError as exc:
                outcome.error = describe_error(exc)
                return outcome
            except EventError as exc:
                outcome.dropped[row.seq] = describe_error(exc)
                log.error("outbox event %s (%s) cannot be published; dropped: %s", event.id, event.type, exc)
            else:
                outcome.sent.append(row.seq)
                if self._on_published is not None:
                    self._on_published([event])
        return outcome

    async def _prune(self) -> None:
        s = self._settings
        now = utcnow()
        try:
            removed = await self._store.prune_outbox(now - dt.timedelta(seconds=s.retention_seconds))
            forgotten = await self._store.prune_processed(now - dt.timedelta(seconds=s.processed_retention_seconds))
        except Exception as exc:
            log.warning("outbox pruning failed: %s", describe_error(exc))
            return
        if removed or forgotten:
            log.info("outbox pruning removed %d sent rows and %d processed-event ids", removed, forgotten)


async def mark_processed(session: object, ctx: TenantContext, plugin: str, event: Event) -> bool:
    """Record that ``plugin`` handled ``event`` in ``ctx``'s tenant, in ``session``'s transaction.

    Returns:
        ``True`` the first time; ``False`` when the id is already recorded (a redelivery).

    Raises:
        EventError: ``session`` is not a session of ``ctx``'s schema.
    """
    session = _check_session(session, ctx)
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = (
        insert(processed_events)
        .values(plugin=plugin, event_id=event.id, processed_at=utcnow())
        .on_conflict_do_nothing(index_elements=["plugin", "event_id"])
    )
    result = await session.execute(statement)
    return isinstance(result, CursorResult) and result.rowcount == 1
