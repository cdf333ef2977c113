"""A task cancelled inside a tenant session ends with ``CancelledError``, and the pool stays usable.

Cancellation arrives while a statement is in flight (a request whose client went away, a
``TaskGroup`` sibling that failed); the session's exit must roll back and release the
connection without replacing the cancellation by the rollback's own complaint.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from plexica.platform import Platform
from tests.plexica.db.support import fresh_postgres_database, make_platform_settings

# PostgreSQL only: SQLite cannot stop a statement running in aiosqlite's thread, so there the
# cancelled statement runs out and the next writer waits for its lock (docs/postgres.md).
pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


@pytest.fixture
async def platform(postgres_url: str, tmp_path: Path) -> AsyncIterator[Platform]:
    async with (
        fresh_postgres_database(postgres_url) as url,
        Platform(make_platform_settings(tmp_path / "data", url)) as platform,
    ):
        yield platform


async def test_cancelling_a_statement_in_flight_raises_cancelled_and_leaves_the_pool_usable(
    platform: Platform,
) -> None:
    tenant = await platform.tenants.provision("acme")
    started = asyncio.Event()

    async def query() -> None:
        async with platform.db.tenant_session(tenant.schema) as session:
            await session.execute(sa.text("CREATE TABLE IF NOT EXISTS probe (n INTEGER)"))
            started.set()
            await session.execute(sa.text("SELECT pg_sleep(5)"))

    task = asyncio.create_task(query())
    await started.wait()
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(3):  # every pooled connection still works, and the cancelled work was rolled back
        async with platform.db.tenant_session(tenant.schema) as session:
            assert (await session.execute(sa.text("SELECT to_regclass('probe') IS NULL"))).scalar() is True
