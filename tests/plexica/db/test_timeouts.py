"""The database timeouts: settings refuse bad values, reach the engine, and a timeout is a 503.

``connect_timeout_seconds`` and ``command_timeout_seconds`` become asyncpg's ``timeout`` and
``command_timeout``, ``pool_timeout_seconds`` the pool's ``timeout``. A statement that outlasts
the command timeout, and a checkout that outwaits the pool, fail with ``BackendUnavailableError``
(503) and leave the pool usable; inside ``unbounded_statements`` (fleet runs) a statement may run
longer. The frozen server itself is ``tests/faults/test_postgres_frozen.py``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from plexica.db.engine import PostgresDatabase
from plexica.settings import DatabaseSettings, load_settings
from plexica_sdk.errors import BackendUnavailableError, SettingsError
from tests.e2e.private_services import own_postgres
from tests.plexica.db.support import fresh_postgres_database

TIMEOUTS = {"connect_timeout_seconds": 1.5, "command_timeout_seconds": 0.5, "pool_timeout_seconds": 0.3}


def test_the_defaults_bound_every_wait() -> None:
    settings = DatabaseSettings()
    assert (settings.connect_timeout_seconds, settings.command_timeout_seconds, settings.pool_timeout_seconds) == (
        5.0,
        30.0,
        5.0,
    )


@pytest.mark.parametrize("field", sorted(TIMEOUTS))
@pytest.mark.parametrize("value", [-1, 0])
def test_a_timeout_that_is_not_positive_is_refused(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        DatabaseSettings(**{field: value})


def test_a_negative_timeout_from_the_environment_is_refused() -> None:
    environ = {"PLEXICA_DATABASE__COMMAND_TIMEOUT_SECONDS": "-5"}
    with pytest.raises(SettingsError, match="command_timeout_seconds"):
        load_settings(None, environ=environ)


@pytest.fixture
async def database(postgres_url: str) -> AsyncIterator[PostgresDatabase]:
    async with fresh_postgres_database(postgres_url) as url:
        db = PostgresDatabase(DatabaseSettings(url=url, pool_size=1, max_overflow=0, **TIMEOUTS))
        await db.open()
        try:
            yield db
        finally:
            await db.close()


def _connect_params(engine: AsyncEngine) -> dict[str, Any]:
    """What the engine hands asyncpg's ``connect`` for its next new connection."""
    seen: dict[str, Any] = {}

    @event.listens_for(engine.sync_engine, "do_connect")
    def _capture(_dialect: Any, _record: Any, _args: Any, params: dict[str, Any]) -> None:
        seen.update(params)

    return seen


@pytest.mark.anyio
@pytest.mark.postgres
async def test_the_settings_reach_the_engine(database: PostgresDatabase) -> None:
    engine = database._core_engine()
    assert engine.pool.timeout() == TIMEOUTS["pool_timeout_seconds"]
    await engine.dispose()  # the next checkout opens a new connection
    bounded = _connect_params(engine)
    async with database.core_connection() as conn:
        await conn.execute(text("SELECT 1"))
    assert bounded["timeout"] == TIMEOUTS["connect_timeout_seconds"]
    assert bounded["command_timeout"] == TIMEOUTS["command_timeout_seconds"]
    with database.unbounded_statements():
        unbounded_engine = database._core_engine()
        assert unbounded_engine is not engine
        assert unbounded_engine.pool.timeout() == TIMEOUTS["pool_timeout_seconds"]
        unbounded = _connect_params(unbounded_engine)
        async with database.core_connection() as conn:
            await conn.execute(text("SELECT 1"))
    assert unbounded["timeout"] == TIMEOUTS["connect_timeout_seconds"]
    assert unbounded["command_timeout"] is None


@pytest.mark.anyio
async def test_a_server_that_accepts_but_never_answers_is_a_503_after_the_connect_timeout() -> None:
    with socket.socket() as silent:  # the kernel completes the handshake; nobody reads or answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        db = PostgresDatabase(DatabaseSettings(url=f"postgresql+asyncpg://u@127.0.0.1:{port}/x", **TIMEOUTS))
        started = time.perf_counter()
        with pytest.raises(BackendUnavailableError, match="TimeoutError"):
            await db.open()
        waited = time.perf_counter() - started
    assert TIMEOUTS["connect_timeout_seconds"] <= waited < TIMEOUTS["connect_timeout_seconds"] + 1.0


@pytest.mark.anyio
@pytest.mark.postgres
async def test_a_statement_past_the_command_timeout_is_a_503_and_the_pool_recovers(
    database: PostgresDatabase,
) -> None:
    started = time.perf_counter()
    with pytest.raises(BackendUnavailableError, match="TimeoutError"):
        async with database.tenant_session("core") as session:
            await session.execute(text("SELECT pg_sleep(5)"))
    assert time.perf_counter() - started < 2.0  # the command timeout, not the sleep
    async with database.core_connection() as conn:
        assert await conn.scalar(text("SELECT 1")) == 1


@pytest.mark.anyio
@pytest.mark.postgres
async def test_on_a_frozen_server_a_statement_fails_after_one_command_timeout() -> None:
    """The timed-out connection is dropped at once: its ROLLBACK does not wait out a second timeout.

    asyncpg keeps a timed-out connection until the server acknowledges the cancel request it sent;
    a frozen server never does (``_listen_for_timeouts``).
    """
    command = 1.0
    async with own_postgres() as server:
        settings = DatabaseSettings(url=server.url, pool_size=1, max_overflow=0, command_timeout_seconds=command)
        async with PostgresDatabase(settings) as db:
            async with db.core_connection() as conn:  # the pooled connection, opened before the freeze
                await conn.execute(text("SELECT 1"))
            server.freeze()
            try:
                started = time.perf_counter()
                with pytest.raises(BackendUnavailableError, match="TimeoutError"):
                    async with db.tenant_session("core") as session:
                        await session.execute(text("SELECT 1"))
                waited = time.perf_counter() - started
            finally:
                server.thaw()
            async with db.core_connection() as conn:
                assert await conn.scalar(text("SELECT 1")) == 1
    assert command <= waited < 2 * command


@pytest.mark.anyio
@pytest.mark.postgres
async def test_a_full_pool_is_a_503_after_the_pool_timeout(database: PostgresDatabase) -> None:
    async with database.core_connection() as held:
        await held.execute(text("SELECT 1"))
        started = time.perf_counter()
        with pytest.raises(BackendUnavailableError, match="TimeoutError"):
            async with database.core_connection() as conn:
                await conn.execute(text("SELECT 1"))
        waited = time.perf_counter() - started
    assert TIMEOUTS["pool_timeout_seconds"] <= waited < 1.5


@pytest.mark.anyio
@pytest.mark.postgres
async def test_fleet_statements_are_not_cut_by_the_command_timeout(database: PostgresDatabase) -> None:
    async def sleep_in_a_task() -> None:  # fleet workers are tasks started inside the block
        async with database.tenant_connection("core") as conn:
            await conn.execute(text("SELECT pg_sleep(0.8)"))

    with database.unbounded_statements():
        await asyncio.create_task(sleep_in_a_task())
    with pytest.raises(BackendUnavailableError):
        await sleep_in_a_task()  # outside the block the bound applies again
