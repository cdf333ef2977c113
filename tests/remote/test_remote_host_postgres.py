"""``host.session()`` out of process: the plugin's own connection, as its own role, on real PostgreSQL.

A host on loopback with probe loaded as a remote plugin; the test plays probe's process with the
database URL ``plexica remote credentials create`` gives it, and writes in its own transactions:
its table, the outbox (delivered by the host's relay after the commit) and its processed events.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from plexica_sdk.errors import EventError
from plexica_sdk.remote.host import HostConnection
from plexica_sdk.types import Event
from tests.plexica.db.support import fresh_postgres_database, write_migrations
from tests.remote.callback_support import PROBE_REVISIONS, ProbePlugin, ServedHost, serve_host

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

notes = sa.Table(  # declared schema-less, like every plugin table: the session binds it to the tenant
    "probe_notes",
    sa.MetaData(),
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("title", sa.String(200), nullable=False),
)


@pytest.fixture
async def served(postgres_url: str, tmp_path: Path, anyio_backend: str) -> AsyncIterator[ServedHost]:
    probe = ProbePlugin(write_migrations(tmp_path / "probe", 1, PROBE_REVISIONS))
    installs = {"acme": ("probe", "spy"), "globex": ("probe", "spy")}
    async with (
        fresh_postgres_database(postgres_url) as url,
        serve_host(
            tmp_path / "data", plugins=(probe,), database={"url": url}, installs=installs, remote=("probe",)
        ) as host,
    ):
        yield host


async def _delivered(served: ServedHost, event_id: str) -> bool:
    for _ in range(250):
        if any(seen.id == event_id for seen in served.spy.received):
            return True
        await asyncio.sleep(0.02)
    return False


async def test_a_remote_session_writes_in_the_plugins_own_transaction(served: ServedHost) -> None:
    platform = served.platform
    assert platform.db_roles is not None and platform.settings.database.url is not None
    secret = secrets.token_urlsafe(32)
    role = await platform.db_roles.set_login("probe", secret)
    database_url = make_url(platform.settings.database.url).set(username=role, password=secret)
    connection = HostConnection(served.url, plugin="probe", database_url=database_url.render_as_string(False))
    try:
        host = await served.remote_host(connection, "acme")
        async with host.session() as session:
            await session.execute(notes.insert().values(title="kept"))
            event = await host.publish("probe.item.created", {"title": "kept"}, session=session)
            assert await host.mark_processed(event, session=session) is True
            assert await host.mark_processed(event, session=session) is False
        assert await _delivered(served, event.id)  # published by the host's relay after the commit

        published: list[Event] = []

        async def failing_handler() -> None:
            async with host.session() as session:
                await session.execute(notes.insert().values(title="rolled back"))
                published.append(await host.publish("probe.item.created", {"title": "rolled back"}, session=session))
                await host.mark_processed(published[0], session=session)
                raise RuntimeError("the handler failed")

        with pytest.raises(RuntimeError):
            await failing_handler()
        lost = published[0]
        async with host.session() as session:
            titles = (await session.execute(sa.select(notes.c.title))).scalars().all()
            assert titles == ["kept"]
            # Still validated at once: a bad payload writes nothing.
            with pytest.raises(EventError):
                await host.publish("probe.item.created", {"no": "title"}, session=session)
            # The session is acme's: another tenant's handle refuses it.
            globex = await served.remote_host(connection, "globex")
            with pytest.raises(EventError):
                await globex.publish("probe.item.created", {"title": "x"}, session=session)
            with pytest.raises(EventError):
                await globex.mark_processed(event, session=session)
        async with platform.db.core_connection() as conn:
            sent = await conn.scalar(sa.text("SELECT count(*) FROM core.outbox WHERE event_id = :id"), {"id": lost.id})
            processed = (await conn.execute(sa.text("SELECT plugin, event_id FROM tenant_acme.processed_events"))).all()
        assert sent == 0 and [tuple(row) for row in processed] == [("probe", event.id)]
        # The same tables, in globex's schema, through globex's session.
        async with globex.session() as session:
            await session.execute(notes.insert().values(title="globex"))
            assert (await session.execute(sa.select(notes.c.title))).scalars().all() == ["globex"]
        # The role's reach is its own: the host's registries are not.
        with pytest.raises(DBAPIError):
            async with host.session() as session:
                await session.execute(sa.text("SELECT * FROM core.tenants"))
    finally:
        await connection.aclose()
