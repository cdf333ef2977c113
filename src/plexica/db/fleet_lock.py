"""The fleet lock: one ``plexica migrate`` (or ``plugins --all``, or spare refill) at a time, on every host.

A fleet run plans from the ledger and then changes schemas; two runs at once would plan the same
tenants twice and race their DDL, and a serving host's spare refill racing a run would clone
spares from a template the run is about to make stale. The lock covers the whole run:

* PostgreSQL: a transaction-level ``pg_advisory_xact_lock(FLEET_LOCK_KEY)`` taken in a
  transaction of its own, on a connection of its own (not one from the pool, so no request ever
  inherits it), kept open for the run and committed at its end. A transaction, unlike a session
  lock, keeps its one server connection behind PgBouncer in transaction mode, and every statement
  (the driver's own start-up queries included) runs inside it, so the lock works through such a
  pooler too. The transaction takes nothing else and, in READ COMMITTED, holds no snapshot between
  statements, so it holds back neither DDL nor vacuum. The connection's ``application_name`` says
  who holds it, so a waiter can name the holder from ``pg_locks`` and ``pg_stat_activity``. If the
  holder dies, its transaction ends and the lock is released. A server-side
  ``idle_in_transaction_session_timeout`` shorter than a run would end the lock early (the run
  then logs that it lost it).
* SQLite: an exclusive ``flock`` on ``<database dir>/.plexica-fleet.lock``, whose content names
  the holder; the kernel releases it when the holder's process ends.

``plexica migrate`` and ``plexica plugins install|upgrade|uninstall --all`` wait for the lock (or,
with ``--no-wait``, fail with one line); a host's periodic spare refill only tries it and skips the
cycle when it is held.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO, Final, final

import attrs
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from plexica.db.engine import Database, PostgresDatabase, SqliteDatabase, asyncpg_connect_args
from plexica_sdk.errors import BackendUnavailableError, PlexicaError

__all__ = ["FLEET_LOCK_KEY", "FleetLock", "FleetLockedError", "LockHolder"]

logger = logging.getLogger(__name__)

#: The advisory lock key of fleet runs: ASCII "plexflet" as a signed 64-bit integer. Distinct from
#: the transaction lock ``migrate_core`` takes (``0x706C6578``) so a host starting during a run
#: can still bring ``core`` to head (the run holds the core lock only while it migrates core).
FLEET_LOCK_KEY: Final = 0x706C6578_666C6574

#: ``application_name`` prefix of the lock's connection; the rest is ``<role> <pid>@<host>``.
_APP_PREFIX: Final = "plexica-lock"
#: SQLite's lock file, next to ``core.db``.
LOCK_FILE: Final = ".plexica-fleet.lock"
_ROLES: Final = {
    "migrate": "plexica migrate",
    "spares": "plexica serve (spare schemas)",
    "plugins": "plexica plugins --all",
}


@attrs.frozen
class LockHolder:
    """Who holds the fleet lock, as far as it can be told (``None``: not recorded)."""

    role: str | None
    pid: int | None
    host: str | None

    def describe(self) -> str:
        who = _ROLES.get(self.role or "", "plexica migrate")
        where = f"pid {self.pid} on host {self.host}" if self.pid is not None else "holder unknown"
        return f"another {who} ({where})"


class FleetLockedError(PlexicaError):
    """The fleet lock is held and the caller chose not to wait."""

    def __init__(self, holder: LockHolder) -> None:
        super().__init__(f"{holder.describe()} is running; not waiting (--no-wait)")
        self.holder = holder


def _label(role: str) -> str:
    return f"{role} {os.getpid()}@{socket.gethostname()}"


def _parse(label: str) -> LockHolder:
    role, _, rest = label.partition(" ")
    pid, _, host = rest.partition("@")
    return LockHolder(role or None, int(pid) if pid.isdigit() else None, host or None)


@final
class FleetLock:
    """The fleet lock of ``db``'s fleet; ``role`` (``migrate``, ``plugins`` or ``spares``) names the holder."""

    def __init__(self, db: Database, role: str = "migrate") -> None:
        self.db = db
        self.role = role

    @contextlib.asynccontextmanager
    async def hold(
        self, *, wait: bool = True, on_wait: Callable[[LockHolder], None] | None = None
    ) -> AsyncIterator[None]:
        """Hold the lock for the block; wait for it (calling ``on_wait`` once) unless ``wait`` is False.

        Raises:
            FleetLockedError: the lock is held and ``wait`` is False.
            BackendUnavailableError: the database does not answer.
        """
        async with self._acquire(wait=wait, on_wait=on_wait) as held:
            assert held  # waiting or raising: never without the lock
            yield

    @contextlib.asynccontextmanager
    async def try_hold(self) -> AsyncIterator[bool]:
        """Hold the lock for the block if it is free now; yields False (and holds nothing) if not."""
        async with self._acquire(wait=False, on_wait=None, raise_held=False) as held:
            yield held

    def _acquire(
        self, *, wait: bool, on_wait: Callable[[LockHolder], None] | None, raise_held: bool = True
    ) -> contextlib.AbstractAsyncContextManager[bool]:
        if isinstance(self.db, PostgresDatabase):
            return self._postgres(self.db, wait, on_wait, raise_held)
        if isinstance(self.db, SqliteDatabase):
            return self._sqlite(self.db.directory / LOCK_FILE, wait, on_wait, raise_held)
        raise TypeError(f"no fleet lock for {type(self.db).__name__}")

    # ------------------------------------------------------------- PostgreSQL

    @contextlib.asynccontextmanager
    async def _postgres(
        self, db: PostgresDatabase, wait: bool, on_wait: Callable[[LockHolder], None] | None, raise_held: bool
    ) -> AsyncIterator[bool]:
        url = make_url(db.settings.url or "")
        label = f"{_APP_PREFIX} {_label(self.role)}"[:63]  # NAMEDATALEN - 1
        engine = create_async_engine(
            url,
            poolclass=NullPool,
            connect_args={**asyncpg_connect_args(url), "server_settings": {"application_name": label}},
        )
        try:
            try:
                conn = await engine.connect()
            except (OSError, OperationalError, DBAPIError) as exc:
                raise BackendUnavailableError("database", type(exc).__name__) from exc
            try:
                # The first statement opens the lock's transaction; it stays open until the run ends.
                try:
                    held = bool(
                        await conn.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": FLEET_LOCK_KEY})
                    )
                except (OSError, DBAPIError) as exc:
                    raise BackendUnavailableError("database", type(exc).__name__) from exc
                if not held:
                    holder = await _postgres_holder(conn)
                    if not wait:
                        if raise_held:
                            raise FleetLockedError(holder)
                        yield False
                        return
                    if on_wait is not None:
                        on_wait(holder)
                    await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": FLEET_LOCK_KEY})
                try:
                    yield True
                finally:
                    try:
                        await conn.commit()  # ends the transaction: releases the lock
                    except (OSError, DBAPIError):  # the transaction ended with its connection
                        logger.warning("the fleet lock was lost during the run (database connection ended)")
            finally:
                with contextlib.suppress(OSError, DBAPIError):
                    await conn.close()
        finally:
            await engine.dispose()

    # ----------------------------------------------------------------- SQLite

    @contextlib.asynccontextmanager
    async def _sqlite(
        self, path: Path, wait: bool, on_wait: Callable[[LockHolder], None] | None, raise_held: bool
    ) -> AsyncIterator[bool]:
        path.parent.mkdir(parents=True, exist_ok=True)
        # a+: never truncates another holder's label; opening a local file is not worth a thread hop.
        with open(path, "a+", encoding="utf-8") as handle:  # noqa: ASYNC230
            warned = False
            while not _try_flock(handle):
                holder = _file_holder(path)
                if not wait:
                    if raise_held:
                        raise FleetLockedError(holder)
                    yield False
                    return
                if not warned and on_wait is not None:
                    on_wait(holder)
                warned = True
                await asyncio.sleep(0.2)  # polling keeps the wait cancellable (a blocking flock is not)
            try:
                handle.seek(0)
                handle.truncate()
                handle.write(_label(self.role))
                handle.flush()
                yield True
            finally:
                handle.seek(0)
                handle.truncate()
                handle.flush()
                fcntl.flock(handle, fcntl.LOCK_UN)


async def _postgres_holder(conn: AsyncConnection) -> LockHolder:
    """Name the session holding the fleet lock from ``pg_locks`` and ``pg_stat_activity``."""
    row = (
        await conn.execute(
            text(
                "SELECT a.application_name, a.client_hostname, host(a.client_addr) AS addr, l.pid"
                " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = :high AND l.objid = :low"
                " AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " LIMIT 1"
            ),
            {"high": FLEET_LOCK_KEY >> 32, "low": FLEET_LOCK_KEY & 0xFFFFFFFF},
        )
    ).first()
    if row is None:  # released in between
        return LockHolder(None, None, None)
    name: str = row.application_name or ""
    if name.startswith(f"{_APP_PREFIX} "):
        return _parse(name.removeprefix(f"{_APP_PREFIX} "))
    # Not one of ours (someone took the key by hand): the server knows its backend and client.
    return LockHolder(None, int(row.pid), row.client_hostname or row.addr or "local socket")


def _try_flock(handle: IO[str]) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _file_holder(path: Path) -> LockHolder:
    try:
        return _parse(path.read_text(encoding="utf-8").strip())
    except OSError:
        return LockHolder(None, None, None)
