"""A remote plugin's own database connection: ``host.session()`` out of process.

Embedded, ``host.session()`` is a session on the host's engine. Remote, the plugin process opens
its own SQLAlchemy engine on ``PLEXICA_PLUGIN_DATABASE_URL``: the plugin's PostgreSQL role
(``plexica remote credentials create`` prints the URL), never the host's user, which reaches only
the plugin's own tables in the tenant schemas where it is installed. Each session is bound to the
schema of the tenant the host signed, through ``schema_translate_map`` like embedded, so the same
schema-less tables and statements run in both modes; it commits on success and rolls back on error.

SQLAlchemy (and the driver, ``asyncpg``) are imported on first use, so a plugin without a
database never loads them.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Final, final

from plexica_sdk.errors import BackendUnavailableError, EventError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

__all__ = [
    "OUTBOX_WRITTEN_KEY",
    "SESSION_SCHEMA_KEY",
    "RemoteDatabase",
    "check_schema",
    "quote_identifier",
    "session_schema",
]

#: In ``session.info``: the tenant schema a remote session is bound to (set by :class:`RemoteDatabase`).
SESSION_SCHEMA_KEY: Final = "plexica.remote.schema"
#: In ``session.info``: the session wrote outbox rows, so the host's relay is woken after its commit.
OUTBOX_WRITTEN_KEY: Final = "plexica.remote.outbox"
_SCHEMA_RE: Final = re.compile(r"^[a-z_][a-z0-9_]{0,62}\Z")
_MAX_BOUND: Final = 256


def quote_identifier(name: str) -> str:
    """``name`` as a double-quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def check_schema(schema: str) -> str:
    """``schema`` if it is a plain lower-case identifier (what the host names tenant schemas)."""
    if not _SCHEMA_RE.match(schema):
        raise EventError(f"not a tenant schema name: {schema[:80]!r}")
    return schema


def session_schema(session: object, expected: str) -> AsyncSession:
    """``session``, if it is a remote session (from ``host.session()``) bound to ``expected``.

    Raises:
        EventError: another object, a session not made by a remote host, or one of another tenant.
    """
    from sqlalchemy.ext.asyncio import AsyncSession

    if not isinstance(session, AsyncSession) or SESSION_SCHEMA_KEY not in session.info:
        raise EventError(f"session must be the AsyncSession of host.session(), not {type(session).__name__}")
    if session.info[SESSION_SCHEMA_KEY] != expected:
        raise EventError("the session is bound to another tenant's schema")
    return session


@final
class RemoteDatabase:
    """One engine per plugin process on its own database URL; sessions bound per tenant schema.

    Args:
        url: a SQLAlchemy async URL with the plugin role's credentials
            (``postgresql+asyncpg://role:secret@host/db``).
        pool_size, max_overflow: the engine's pool.
    """

    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int = 0) -> None:
        self.url = url
        self._pool_size = pool_size
        self._max_overflow = max_overflow
        self._engine: AsyncEngine | None = None
        self._bound: dict[str, AsyncEngine] = {}

    def _bound_to(self, schema: str) -> AsyncEngine:
        bound = self._bound.get(schema)
        if bound is None:
            if self._engine is None:
                from sqlalchemy.ext.asyncio import create_async_engine

                self._engine = create_async_engine(
                    self.url, pool_size=self._pool_size, max_overflow=self._max_overflow, pool_pre_ping=False
                )
            if len(self._bound) >= _MAX_BOUND:  # shallow copies sharing the pool: cheap to make again
                self._bound.clear()
            # A shallow copy sharing the pool: only the statement compilation differs.
            bound = self._bound[schema] = self._engine.execution_options(schema_translate_map={None: schema})
        return bound

    @contextlib.asynccontextmanager
    async def session(self, schema: str) -> AsyncIterator[AsyncSession]:
        """An ``AsyncSession`` bound to ``schema``, in a transaction committed on success.

        Raises:
            BackendUnavailableError: the database cannot be reached.
        """
        from sqlalchemy.exc import DBAPIError
        from sqlalchemy.ext.asyncio import AsyncSession

        engine = self._bound_to(check_schema(schema))
        try:
            async with AsyncSession(engine, expire_on_commit=False) as session:
                session.info[SESSION_SCHEMA_KEY] = schema
                async with session.begin():
                    yield session
        except OSError as exc:
            raise BackendUnavailableError("database", type(exc).__name__) from exc
        except DBAPIError as exc:
            if exc.connection_invalidated or isinstance(exc.orig, OSError):
                raise BackendUnavailableError("database", type(exc.orig).__name__) from exc
            raise

    async def aclose(self) -> None:
        """Dispose of the engine and its pooled connections."""
        if self._engine is not None:
            await self._engine.dispose()
        self._engine = None
        self._bound.clear()
