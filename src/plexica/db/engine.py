"""Database engines: SQLite files (embedded default) and PostgreSQL, behind one interface.

Both give the same two kinds of session: ``core`` (the registries) and tenant-scoped (one tenant's
schema, bound through ``schema_translate_map``). On SQLite a tenant's schema is its own database
file, attached under the schema's name; on PostgreSQL it is a real schema.

The request path pays no round trip it does not need:

- **No pre-ping.** A pooled PostgreSQL connection is checked at checkout without a round trip
  (asyncpg notices a server-side close as it happens); a dead one is replaced there, and
  ``pool_recycle`` retires connections before a proxy's idle timeout can cut them. A connection
  lost mid-flight fails that request with 503 and SQLAlchemy discards the pool's older ones.
- **Bounded waits** (``connect_timeout_seconds``, ``command_timeout_seconds``,
  ``pool_timeout_seconds``): a server that stops answering without closing its sockets (frozen,
  or a network that drops packets) fails a request with 503 within those bounds instead of
  holding it forever. A statement that timed out drops its connection at once and the pool's
  older ones with it (see ``_listen_for_timeouts``). Fleet runs lift the statement bound
  (:meth:`Database.unbounded_statements`): their DDL may run longer than any request.
- **Deferred BEGIN** (``lazy_begin=True``, what plugins' sessions get): statements that only read
  run on their own, and BEGIN is sent just before the first statement that may write (or lock:
  ``FOR UPDATE``, advisory transaction locks, server-side cursors). Under READ COMMITTED every
  statement takes its own snapshot anyway, so a read before the first write sees what it would
  have seen inside the transaction; a read-only session costs its SELECTs and nothing else.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import contextlib
import contextvars
import logging
import os
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, Final, Literal, final

from sqlalchemy import URL, Engine, event, make_url, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, DisconnectionError, PendingRollbackError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.util import greenlet_spawn

from plexica.db.metadata import CORE_SCHEMA
from plexica.settings import DatabaseSettings
from plexica.tenancy.naming import check_identifier, quote_identifier
from plexica_sdk import context
from plexica_sdk.errors import BackendUnavailableError, MissingDependencyError

__all__ = ["Database", "PostgresDatabase", "SqliteDatabase", "create_database"]

logger = logging.getLogger(__name__)

#: The execution option asking for a deferred BEGIN (see the module docstring).
LAZY_BEGIN: Final = "plexica_lazy_begin"
_PENDING: Final = "plexica_begin_pending"  # in a connection's info: BEGIN deferred, not yet sent
#: Set by :meth:`Database.unbounded_statements`: this task's statements run without the command timeout.
_UNBOUNDED: Final = contextvars.ContextVar("plexica_unbounded_statements", default=False)
#: What a database call raises when the server cannot be reached or does not answer in time
#: (``TimeoutError`` is an ``OSError``; a full pool raises SQLAlchemy's own ``TimeoutError``).
_FAILURES: Final = (OSError, DBAPIError, PoolTimeoutError)
#: What makes a SELECT more than a read: row locks, transaction-scoped locks and settings, sequences.
_NOT_ONLY_READING = re.compile(
    r"\bFOR\s+(?:NO\s+KEY\s+UPDATE|UPDATE|KEY\s+SHARE|SHARE)\b|_xact_|\b(?:nextval|setval|set_config)\s*\(",
    re.IGNORECASE,
)


def reads_only(statement: str, context: Any) -> bool:
    """Whether ``statement`` may run outside the transaction: a plain SELECT on a client-side cursor."""
    if statement.lstrip()[:6].upper() != "SELECT":
        return False
    if context is not None:
        if getattr(context, "is_server_side", False):
            return False
        compiled_statement = getattr(getattr(context, "compiled", None), "statement", None)
        if getattr(compiled_statement, "_for_update_arg", None) is not None:  # compiled away on SQLite
            return False
    return _NOT_ONLY_READING.search(statement) is None


class Database(abc.ABC):
    """Sessions and connections for the core registries and for each tenant's schema."""

    dialect: Literal["sqlite", "postgresql"]
    #: Called with the sync ``Engine`` of each engine this database creates (metrics time its statements).
    on_engine: Callable[[Engine], None] | None = None

    async def __aenter__(self) -> Database:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @abc.abstractmethod
    async def open(self) -> None:
        """Create the engines and make sure the ``core`` schema exists."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Dispose every engine and pooled connection."""

    @abc.abstractmethod
    def _core_engine(self) -> AsyncEngine: ...

    @abc.abstractmethod
    async def _tenant_engine(self, schema: str) -> AsyncEngine: ...

    @abc.abstractmethod
    async def create_schema(self, schema: str) -> None:
        """Create a tenant schema (idempotent)."""

    @abc.abstractmethod
    async def drop_schema(self, schema: str) -> None:
        """Drop a tenant schema and everything in it (idempotent)."""

    @abc.abstractmethod
    async def schema_exists(self, schema: str) -> bool: ...

    @property
    @abc.abstractmethod
    def max_connections(self) -> int:
        """How many connections one can hold at once; bounds parallel work such as fleet migrations."""

    @contextlib.asynccontextmanager
    async def core_connection(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction on the core registries; committed on success."""
        async with self._translate_errors(), self._core_engine().begin() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def tenant_connection(
        self, schema: str | None = None, *, lazy_begin: bool = False
    ) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction bound to a tenant schema (default: the current tenant's).

        ``lazy_begin``: send BEGIN only before the first statement that may write (module docstring).
        """
        engine = await self._tenant_engine(self._schema(schema))
        async with self._translate_errors(), engine.connect() as conn:
            if lazy_begin:
                await conn.execution_options(**{LAZY_BEGIN: True})
            async with conn.begin():
                yield conn

    @contextlib.asynccontextmanager
    async def core_session(self) -> AsyncIterator[AsyncSession]:
        """An ORM session on the core registries, in a transaction committed on success."""
        async with (
            self._translate_errors(),
            AsyncSession(self._core_engine(), expire_on_commit=False) as session,
            session.begin(),
        ):
            yield session

    def tenant_session(
        self, schema: str | None = None, *, lazy_begin: bool = False
    ) -> contextlib.AbstractAsyncContextManager[AsyncSession]:
        """An ORM session bound to a tenant schema (default: the current tenant's), committed on success.

        ``lazy_begin``: send BEGIN only before the first statement that may write (module docstring).

        Raises:
            TenantContextMissingError: no schema is given and no tenant context is set.
        """
        # The request path's one session: a plain class, not a generator-based context manager (see _SessionScope).
        return _SessionScope(self, self._schema(schema), _LAZY if lazy_begin else None)

    @contextlib.contextmanager
    def unbounded_statements(self) -> Iterator[None]:
        """Within the block (and tasks it starts), statements run without ``command_timeout_seconds``.

        For fleet runs (``plexica migrate``): their DDL and lock waits may legitimately outlast any
        request. Connecting and waiting for the pool stay bounded.
        """
        token = _UNBOUNDED.set(True)
        try:
            yield
        finally:
            _UNBOUNDED.reset(token)

    async def ping(self) -> None:
        """Raise :class:`BackendUnavailableError` unless the database answers."""
        async with self.core_connection() as conn:
            await conn.execute(text("SELECT 1"))

    @staticmethod
    def _schema(schema: str | None) -> str:
        return check_identifier(schema if schema is not None else context.current("a tenant query").schema)

    @contextlib.asynccontextmanager
    async def _translate_errors(self) -> AsyncIterator[None]:
        try:
            yield
        except _FAILURES as exc:
            unavailable = _unavailable(exc)
            if unavailable is None:
                raise
            raise unavailable from exc


def _unavailable(exc: BaseException) -> BackendUnavailableError | None:
    """The 503 for an error that means the database cannot be reached, else ``None``."""
    if isinstance(exc, (OSError, PoolTimeoutError)):  # TimeoutError (connect, statement) is an OSError
        return BackendUnavailableError("database", type(exc).__name__)
    if isinstance(exc, DBAPIError) and (exc.connection_invalidated or _is_connect_error(exc)):
        return BackendUnavailableError("database", type(exc.orig).__name__)
    return None


_LAZY: Final = {LAZY_BEGIN: True}


@final
class _SessionScope:
    """``tenant_session``: ``async with AsyncSession(...) as s, s.begin()`` without the work a commit does not need.

    SQLAlchemy's context managers spend a greenlet switch on ``begin()`` (no IO unless a transaction
    hook does some; Plexica has none) and a task plus a shield on ``close()``, which must finish
    releasing the connection even if the caller is cancelled. After a successful commit the
    session holds no connection, so its close is bookkeeping and runs inline; any other exit (an
    error, a cancellation, a failed commit) takes SQLAlchemy's own shielded path. Errors that mean
    the database is unreachable become ``BackendUnavailableError``, as in ``_translate_errors``.
    """

    __slots__ = ("_database", "_options", "_schema", "_session", "_transaction")

    def __init__(self, database: Database, schema: str, options: dict[str, Any] | None) -> None:
        self._database, self._schema, self._options = database, schema, options

    async def __aenter__(self) -> AsyncSession:
        engine = await self._database._tenant_engine(self._schema)
        self._session = AsyncSession(engine, expire_on_commit=False, execution_options=self._options)
        self._transaction = self._session.sync_session.begin()
        self._transaction.__enter__()
        return self._session

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        try:
            await self._end(exc_type, exc, tb)
        except _FAILURES as failed:
            unavailable = _unavailable(failed)
            if unavailable is None:
                raise
            raise unavailable from failed
        if exc is not None and (unavailable := _unavailable(exc)) is not None:
            raise unavailable from exc

    async def _end(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        session = self._session
        try:
            await greenlet_spawn(self._transaction.__exit__, exc_type, exc, tb)  # COMMIT, or ROLLBACK on error
        except BaseException as failed:
            await session.__aexit__(type(failed), failed, failed.__traceback__)
            if exc is not None and isinstance(failed, DBAPIError | PendingRollbackError):
                # The rollback of a statement cut short (cancelled, connection lost) fails too; the
                # closed session gave its connection back invalidated, and the caller's own error
                # (or cancellation) is the one that explains what happened.
                return
            raise
        if exc_type is None and not session.sync_session.in_transaction():
            session.sync_session.close()  # no connection left to release: no IO, nothing to shield
            return
        await session.__aexit__(exc_type, exc, tb)


#: SQLSTATEs meaning the server is going, gone or not back yet: connection exceptions (class 08),
#: ``admin_shutdown``, ``crash_shutdown`` and ``cannot_connect_now`` (shutting down, starting up).
_UNAVAILABLE_STATES: Final = ("08", "57P01", "57P02", "57P03")


def _is_connect_error(exc: DBAPIError) -> bool:
    # SQLAlchemy's asyncpg adapter wraps the driver's error in its own class, keeping the SQLSTATE.
    state = getattr(exc.orig, "sqlstate", None) or ""
    if state.startswith(_UNAVAILABLE_STATES):
        return True
    cause = getattr(exc.orig, "__cause__", None)
    if isinstance(exc.orig, TimeoutError) or isinstance(cause, TimeoutError):
        return True
    names = {type(exc.orig).__name__, type(cause).__name__}
    return not names.isdisjoint({"CannotConnectNowError", "ConnectionDoesNotExistError", "InterfaceError"})


@final
class SqliteDatabase(Database):
    """The embedded default: ``core.db`` plus one ``tenant_<slug>.db`` file per tenant.

    Every transaction starts with ``BEGIN IMMEDIATE``, which makes DDL transactional and avoids
    SQLite's lock-upgrade deadlocks between concurrent writers.
    """

    dialect = "sqlite"

    def __init__(
        self,
        directory: Path,
        *,
        echo: bool = False,
        max_open_tenants: int = 64,
        pool_size: int = 5,
        max_overflow: int = 0,
    ) -> None:
        self.directory = Path(directory)
        self.echo = echo
        self.max_open_tenants = max_open_tenants
        self.pool_size = pool_size
        self.max_overflow = max_overflow
        self._core: AsyncEngine | None = None
        self._tenants: collections.OrderedDict[str, AsyncEngine] = collections.OrderedDict()
        self._lock = asyncio.Lock()

    def path_of(self, schema: str) -> Path:
        return self.directory / f"{check_identifier(schema)}.db"

    def _make_engine(self, schema: str) -> AsyncEngine:
        path = str(self.path_of(schema))
        translate: dict[str | None, str] | None = None if schema == CORE_SCHEMA else {None: schema}
        engine = create_async_engine(
            "sqlite+aiosqlite:///:memory:",
            poolclass=AsyncAdaptedQueuePool,
            pool_size=self.pool_size,
            max_overflow=self.max_overflow,
            echo=self.echo,
            execution_options={"schema_translate_map": translate} if translate else {},
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _attach(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (see class docstring)
            cursor = dbapi_connection.cursor()
            cursor.execute(f"ATTACH DATABASE ? AS {quote_identifier(schema)}", (path,))
            cursor.execute(f"PRAGMA {quote_identifier(schema)}.journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(conn: Any) -> None:
            if conn.get_execution_options().get(LAZY_BEGIN):
                conn.info[_PENDING] = True
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def _deferred_begin(conn: Any, cursor: Any, statement: str, _params: Any, context: Any, _many: bool) -> None:
            if conn.info.get(_PENDING) and not reads_only(statement, context):
                del conn.info[_PENDING]
                cursor.execute("BEGIN IMMEDIATE")

        _listen_for_transaction_end(engine)
        _skip_idle_transaction_ends(engine)

        if self.on_engine is not None:
            self.on_engine(engine.sync_engine)
        return engine

    async def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._core = self._make_engine(CORE_SCHEMA)

    async def close(self) -> None:
        engines = [*self._tenants.values(), *([self._core] if self._core else [])]
        self._tenants.clear()
        self._core = None
        for engine in engines:
            await engine.dispose()

    def _core_engine(self) -> AsyncEngine:
        if self._core is None:
            raise BackendUnavailableError("database", "not opened")
        return self._core

    async def _tenant_engine(self, schema: str) -> AsyncEngine:
        engine = self._tenants.get(schema)
        if engine is not None:
            self._tenants.move_to_end(schema)
            return engine
        async with self._lock:
            engine = self._tenants.get(schema)
            if engine is None:
                engine = self._tenants[schema] = self._make_engine(schema)
            evicted = []
            while len(self._tenants) > self.max_open_tenants:
                evicted.append(self._tenants.popitem(last=False)[1])
        for old in evicted:  # bound open files and aiosqlite threads
            await old.dispose()
        return engine

    async def create_schema(self, schema: str) -> None:
        async with self.tenant_connection(schema) as conn:
            await conn.execute(text("SELECT 1"))

    async def _release(self, schema: str) -> None:
        async with self._lock:
            engine = self._tenants.pop(check_identifier(schema), None)
        if engine is not None:
            await engine.dispose()

    async def drop_schema(self, schema: str) -> None:
        await self._release(schema)
        path = self.path_of(schema)

        def remove() -> None:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

        await asyncio.to_thread(remove)

    async def copy_schema(self, source: str, target: str) -> None:
        """Make ``target`` a copy of ``source``, replacing it atomically (the template clone).

        SQLite's backup API copies a consistent snapshot, WAL included, even while ``source`` is open.
        """
        source_path, target_path = self.path_of(source), self.path_of(target)
        await self._release(target)

        def copy() -> None:
            partial = target_path.with_name(f".{target_path.name}.{uuid.uuid4().hex}")
            try:
                with (
                    contextlib.closing(sqlite3.connect(f"{source_path.resolve().as_uri()}?mode=ro", uri=True)) as src,
                    contextlib.closing(sqlite3.connect(partial)) as dst,
                ):
                    src.backup(dst)
                for suffix in ("-wal", "-shm", "-journal"):
                    Path(f"{target_path}{suffix}").unlink(missing_ok=True)
                os.replace(partial, target_path)
            finally:
                partial.unlink(missing_ok=True)

        async with self._translate_errors():
            await asyncio.to_thread(copy)

    async def schema_exists(self, schema: str) -> bool:
        return self.path_of(schema).exists()

    @property
    def max_connections(self) -> int:
        # Each tenant has its own file and pool; writers to ``core`` queue on its lock.
        return self.max_open_tenants


def _asyncpg_timeouts(settings: DatabaseSettings, *, unbounded: bool = False) -> dict[str, Any]:
    """asyncpg's connect arguments for ``settings``' timeouts (``unbounded``: no statement timeout)."""
    return {
        "timeout": settings.connect_timeout_seconds,
        "command_timeout": None if unbounded else settings.command_timeout_seconds,
    }


def asyncpg_connect_args(url: URL) -> dict[str, Any]:
    """asyncpg's connect arguments for ``url``: unique statement names when its statement cache is off.

    ``?prepared_statement_cache_size=0`` is how a URL says it goes through PgBouncer in transaction
    mode, where consecutive transactions may land on different server connections, so a statement
    name must never be reused (see docs/postgres.md). Every engine made for the fleet's database
    (the host's, the fleet lock's) takes these.
    """
    if url.query.get("prepared_statement_cache_size") != "0":
        return {}
    return {
        "prepared_statement_name_func": lambda: f"__plexica_{uuid.uuid4().hex}__",
        "statement_cache_size": 0,  # asyncpg's own cache (type introspection)
    }


@final
class PostgresDatabase(Database):
    """PostgreSQL via asyncpg: schema ``core`` plus one schema per tenant, one shared pool.

    Tenant binding is per statement (``schema_translate_map``), never per connection, so the pool
    (and PgBouncer in transaction mode) can hand any connection to any tenant.
    """

    dialect = "postgresql"

    def __init__(self, settings: DatabaseSettings) -> None:
        if settings.url is None:
            raise ValueError("PostgresDatabase needs a database URL")
        self.settings = settings
        self._engine: AsyncEngine | None = None
        self._unbounded: AsyncEngine | None = None  # created by the first unbounded statement
        self._bound: dict[tuple[str, bool], AsyncEngine] = {}

    async def open(self) -> None:
        try:
            import asyncpg  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError("postgres", "asyncpg") from exc
        self._engine = self._make_engine(unbounded=False)
        try:
            async with self._engine.begin() as conn:
                await conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(CORE_SCHEMA)}"))
        except _FAILURES as exc:
            await self._engine.dispose()
            self._engine = None
            raise BackendUnavailableError("database", type(exc).__name__) from exc

    def _make_engine(self, *, unbounded: bool) -> AsyncEngine:
        url = make_url(self.settings.url or "")
        engine = create_async_engine(
            url,
            pool_size=self.settings.pool_size,
            max_overflow=self.settings.max_overflow,
            pool_recycle=self.settings.pool_recycle_seconds,
            pool_timeout=self.settings.pool_timeout_seconds,
            echo=self.settings.echo,
            connect_args={**asyncpg_connect_args(url), **_asyncpg_timeouts(self.settings, unbounded=unbounded)},
        )
        _listen_for_liveness(engine)
        _listen_for_timeouts(engine)
        _listen_for_deferred_begin(engine)
        if self.on_engine is not None:
            self.on_engine(engine.sync_engine)
        return engine

    async def close(self) -> None:
        for engine in (self._engine, self._unbounded):
            if engine is not None:
                await engine.dispose()
        self._engine = self._unbounded = None
        self._bound.clear()

    def _core_engine(self) -> AsyncEngine:
        if self._engine is None:
            raise BackendUnavailableError("database", "not opened")
        if not _UNBOUNDED.get():
            return self._engine
        if self._unbounded is None:  # a pool of its own: its connections have no statement timeout
            self._unbounded = self._make_engine(unbounded=True)
        return self._unbounded

    async def _tenant_engine(self, schema: str) -> AsyncEngine:
        key = (schema, _UNBOUNDED.get())
        bound = self._bound.get(key)
        if bound is None:
            # A shallow copy sharing the pool: only the statement compilation differs.
            bound = self._bound[key] = self._core_engine().execution_options(
                schema_translate_map={None: check_identifier(schema)}
            )
        return bound

    async def create_schema(self, schema: str) -> None:
        async with self.core_connection() as conn:
            await conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(schema)}"))

    async def drop_schema(self, schema: str) -> None:
        async with self.core_connection() as conn:
            await conn.execute(text(f"DROP SCHEMA IF EXISTS {quote_identifier(schema)} CASCADE"))
        for unbounded in (False, True):
            self._bound.pop((schema, unbounded), None)

    async def schema_exists(self, schema: str) -> bool:
        async with self.core_connection() as conn:
            found = await conn.scalar(
                text("SELECT 1 FROM pg_namespace WHERE nspname = :name"), {"name": check_identifier(schema)}
            )
        return found is not None

    @property
    def max_connections(self) -> int:
        return self.settings.pool_size + self.settings.max_overflow


def _skip_idle_transaction_ends(engine: AsyncEngine) -> None:
    """SQLite: no COMMIT or ROLLBACK (each a hop to aiosqlite's thread) when no BEGIN was sent.

    A read-only session with a deferred BEGIN, and the pool's reset of a connection coming back,
    would otherwise each cost a thread round trip for nothing.
    """
    dialect = engine.sync_engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(dbapi_connection: Any) -> None:
        if dbapi_connection.driver_connection.in_transaction:
            commit(dbapi_connection)

    def do_rollback(dbapi_connection: Any) -> None:
        if dbapi_connection.driver_connection.in_transaction:
            rollback(dbapi_connection)

    dialect.do_commit = do_commit  # type: ignore[method-assign]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign]


def _listen_for_liveness(engine: AsyncEngine) -> None:
    """Replace a pooled connection the server closed, at checkout and without a round trip.

    asyncpg reads every connection's socket while it idles, so a server-side close (restart,
    ``pg_terminate_backend``, an idle timeout) marks it closed at once; raising
    ``DisconnectionError`` here makes the pool discard it and check out another (SQLAlchemy's
    "custom pessimistic ping" hook, with a local check instead of ``SELECT 1``).
    """

    @event.listens_for(engine.sync_engine, "checkout")
    def _check(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        driver = getattr(dbapi_connection, "driver_connection", None)
        if driver is not None and driver.is_closed():
            raise DisconnectionError("the server closed this pooled connection")


def _listen_for_timeouts(engine: AsyncEngine) -> None:
    """A statement that timed out closes its connection at once and makes the pool replace the others.

    On a timeout asyncpg sends the server a cancel request and keeps the connection until the
    server acknowledges it; a frozen server never does, so the ROLLBACK that follows (or
    SQLAlchemy's graceful close) would wait out further timeouts. Aborting the socket here and
    calling the error a disconnect fails the request at once (503), invalidates the connections
    pooled before it (all as stuck as this one) and leaves new ones to ``connect_timeout_seconds``.
    """

    @event.listens_for(engine.sync_engine, "handle_error")
    def _timed_out(ctx: ExceptionContext) -> None:
        if not isinstance(ctx.original_exception, TimeoutError) or ctx.connection is None:
            return
        if not ctx.connection.invalidated:
            driver = ctx.connection.connection.driver_connection
            if driver is not None:
                driver.terminate()  # no IO: drops the socket and the pending cancel request
        ctx.is_disconnect = True


def _listen_for_deferred_begin(engine: AsyncEngine) -> None:
    """PostgreSQL's deferred BEGIN: the asyncpg adapter runs in autocommit until the first write."""

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        if conn.get_execution_options().get(LAZY_BEGIN):
            adapter = conn.connection.dbapi_connection
            if adapter.isolation_level is None:  # the default READ COMMITTED only (see module docstring)
                adapter.autocommit = True
                conn.info[_PENDING] = True

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _deferred_begin(conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool) -> None:
        if conn.info.get(_PENDING) and not reads_only(statement, context):
            del conn.info[_PENDING]
            conn.connection.dbapi_connection.autocommit = False  # the adapter sends BEGIN before this statement

    _listen_for_transaction_end(engine)


def _listen_for_transaction_end(engine: AsyncEngine) -> None:
    def _end(conn: Any) -> None:
        if conn.invalidated:  # lost mid-transaction (the server went): no state to reset, and ``info`` would raise
            return
        if conn.info.pop(_PENDING, False) and conn.dialect.name == "postgresql":
            conn.connection.dbapi_connection.autocommit = False

    event.listen(engine.sync_engine, "commit", _end)
    event.listen(engine.sync_engine, "rollback", _end)


def create_database(settings: DatabaseSettings, data_dir: Path) -> Database:
    """SQLite under ``data_dir/db`` when no URL is set, else PostgreSQL."""
    if settings.url is None:
        return SqliteDatabase(Path(data_dir) / "db", echo=settings.echo)
    if settings.url.startswith("sqlite"):
        raise ValueError("set database.url only for PostgreSQL; leave it unset for the embedded SQLite files")
    return PostgresDatabase(settings)
