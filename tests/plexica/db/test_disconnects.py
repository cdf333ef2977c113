"""A server that drops a connection or refuses new ones is a 503 (``BackendUnavailableError``), never a 500.

* ``pg_terminate_backend`` ends our own backend while it runs a statement, as a server shutdown
  does (only the test's connection; the shared server keeps running). The statement's error and
  the rollback that follows must both come out as ``BackendUnavailableError`` (the rollback used
  to raise ``PendingRollbackError``), and the next session must work without reopening anything.
* A server of the test's own in a smart shutdown refuses new connections with SQLSTATE 57P03
  ("the database system is shutting down"), as it does while starting up; SQLAlchemy's asyncpg
  adapter wraps that in its own ``Error`` class, which used to escape as a bare ``DBAPIError``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from sqlalchemy import text

from plexica.db.engine import PostgresDatabase
from plexica.settings import DatabaseSettings
from plexica_sdk.errors import BackendUnavailableError
from tests.e2e.private_services import own_postgres
from tests.plexica.db.support import fresh_postgres_database

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


@pytest.fixture
async def database(postgres_url: str) -> AsyncIterator[PostgresDatabase]:
    async with fresh_postgres_database(postgres_url) as url:
        db = PostgresDatabase(DatabaseSettings(url=url, pool_size=2, max_overflow=0))
        await db.open()
        try:
            yield db
        finally:
            await db.close()


async def terminated_mid_statement(database: PostgresDatabase, scope: AbstractAsyncContextManager[Any]) -> None:
    """Run ``pg_sleep`` in ``scope`` and terminate its backend from another connection meanwhile."""
    async with scope as handle:
        pid = await handle.scalar(text("SELECT pg_backend_pid()"))
        sleeping = asyncio.ensure_future(handle.execute(text("SELECT pg_sleep(30)")))
        await asyncio.sleep(0.2)
        async with database.core_connection() as other:
            await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await sleeping


SCOPES: dict[str, Callable[[PostgresDatabase], AbstractAsyncContextManager[Any]]] = {
    "tenant_session": lambda db: db.tenant_session("core"),
    "tenant_session_lazy_begin": lambda db: db.tenant_session("core", lazy_begin=True),
    "core_connection": lambda db: db.core_connection(),
}


@pytest.mark.parametrize("scope", SCOPES)
async def test_a_backend_terminated_mid_statement_is_unavailable_and_the_pool_recovers(
    database: PostgresDatabase, scope: str
) -> None:
    with pytest.raises(BackendUnavailableError, match="database is unavailable"):
        await terminated_mid_statement(database, SCOPES[scope](database))
    for _ in range(3):  # every pooled connection works again
        async with SCOPES[scope](database) as handle:
            assert await handle.scalar(text("SELECT 1")) == 1


async def test_connecting_while_the_server_shuts_down_is_unavailable() -> None:
    async with own_postgres() as server:
        db = PostgresDatabase(DatabaseSettings(url=server.url, pool_size=1, max_overflow=1))
        await db.open()
        try:
            async with db.core_connection() as held:  # an open session keeps a smart shutdown waiting
                await server._run("pg_ctl", "-D", str(server.data), "-m", "smart", "-W", "stop")
                await asyncio.sleep(0.2)
                with pytest.raises(BackendUnavailableError, match="database is unavailable"):
                    async with db.core_connection() as fresh:  # the pool's overflow: a new connection
                        await fresh.execute(text("SELECT 1"))
                assert await held.scalar(text("SELECT 1")) == 1
        finally:
            await db.close()
        for _ in range(400):  # the last session gone, the shutdown completes on its own (then nothing to stop)
            if not (server.data / "postmaster.pid").exists():
                break
            await asyncio.sleep(0.05)
