"""Core events go through the transactional outbox: nothing lost, nothing invented, no caller failed.

* A broker outage (a Tansu of the test's own, killed and started again): core writes over HTTP
  and tenant lifecycle changes still succeed while it is down; their events arrive once it is back.
* A host process ``kill -9``'d right after its core changes committed, before its relay ran: a
  restarted host publishes every one of those events, with the ids the outbox kept.
* A change rolled back after its event was written leaves no outbox row and publishes nothing.

Each runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from plexica.db.engine import Database, create_database
from plexica.events.models import core_outbox, tenant_outbox
from plexica.events.recorder import EventRecorder
from plexica.platform import Platform
from plexica.settings import Settings
from plexica.tenancy.repository import TenantRepository
from plexica.tenancy.service import tenant_context_of
from plexica.workspaces.models import Actor, workspaces
from plexica_sdk.types import Event, Principal, TenantContext
from tests.e2e.conftest import Host
from tests.e2e.core_outbox_child import CoreRecorder, settings_for
from tests.e2e.people import API
from tests.plexica.db.support import database_url
from tests.plexica.events.conftest import FAST_CONSUMER, eventually
from tests.plexica.events.outbox_support import own_tansu

__all__ = ["database_url"]

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]

MakeHost = Callable[..., contextlib.AbstractAsyncContextManager[Host]]


async def unsent(db: Database, schema: str) -> dict[str, str]:
    """``{event id: type}`` of the rows no relay sent yet, wherever this database keeps them."""
    found: dict[str, str] = {}
    places: list[tuple[contextlib.AbstractAsyncContextManager[AsyncConnection], sa.Table]] = [
        (db.core_connection(), core_outbox)
    ]
    if db.dialect == "sqlite":  # tenant transactions write their tenant's own file
        places.append((db.tenant_connection(schema), tenant_outbox))
    for connecting, table in places:
        async with connecting as conn:
            rows = await conn.execute(sa.select(table.c.event_id, table.c.event_type).where(table.c.sent_at.is_(None)))
            found.update({event_id: event_type for event_id, event_type in rows})
    return found


@contextlib.asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[Database]:
    async with create_database(settings.database, settings.data_dir) as db:
        yield db


def _database(url: str | None) -> dict[str, Any]:
    return {"database": {"url": url}} if url else {}


# ------------------------------------------------------------------ broker outage


@pytest.mark.kafka
async def test_a_broker_outage_fails_no_core_write_and_loses_no_core_event(
    database_url: str | None, tmp_path: Path, make_host: MakeHost
) -> None:
    recorder = CoreRecorder()
    async with own_tansu(tmp_path) as broker:
        events = {
            "backend": "kafka",
            "bootstrap_servers": broker.bootstrap,
            "replication_factor": 1,
            "partitions": 1,
            "enable_idempotence": False,  # Tansu does not support aiokafka's idempotent producer
            "retry_backoff_seconds": 0.01,
            "kafka": {**FAST_CONSUMER, "io_timeout_seconds": 2.0},
            "outbox": {"poll_seconds": 0.05},
        }
        async with make_host([recorder], events=events, **_database(database_url)) as host:
            platform = host.platform
            tenant = await platform.tenants.provision("acme")
            await eventually(lambda: any(e.type == "core.tenant.created" for e in recorder.events), timeout=30)

            await broker.stop()
            token = host.token("acme", "alice", roles=("tenant_admin",))
            started = time.monotonic()
            created = await host.client.post(f"{API}/workspaces", json={"name": "Outage"}, headers=host.auth(token))
            took = time.monotonic() - started
            assert created.status_code == 201, created.text  # the caller never waits for the broker
            workspace = created.json()["id"]
            await platform.tenants.suspend("acme")  # core-transaction events: no error either
            await platform.tenants.resume("acme")
            await asyncio.sleep(0.5)  # the relay tries meanwhile, and fails
            async with opened(platform.settings) as db:
                waiting = await unsent(db, tenant.schema)
            expected = {
                "core.user.created",
                "core.workspace.created",
                "core.workspace.member.added",
                "core.tenant.suspended",
                "core.tenant.resumed",
            }
            assert set(waiting.values()) == expected, waiting
            assert not [e for e in recorder.events if e.id in waiting]

            await broker.start()
            await eventually(
                lambda: set(waiting) <= {e.id for e in recorder.events}, timeout=60, what="the events after the outage"
            )
            async with opened(platform.settings) as db:
                assert await unsent(db, tenant.schema) == {}

    delivered = {e.id: e for e in recorder.events if e.id in waiting}
    assert {e.type for e in delivered.values()} == expected
    made = next(e for e in delivered.values() if e.type == "core.workspace.created")
    assert made.data["workspace_id"] == workspace and made.subject == workspace and made.workspaceid == workspace
    assert made.data["name"] == "Outage"
    assert made.userid == "alice" and made.tenantid == tenant.id
    print(f"\nPOST /workspaces with the broker down answered 201 in {took * 1000:.0f} ms")


# ------------------------------------------------------------------ crash after commit


async def test_a_host_killed_after_commit_loses_no_core_event(database_url: str | None, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = (tmp_path / "child.log").open("wb")
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.e2e.core_outbox_child",
        str(data_dir),
        *([database_url] if database_url else []),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), timeout=120)
        assert line, (tmp_path / "child.log").read_text()[-3000:]
        done: dict[str, str] = json.loads(line)
    finally:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGKILL)  # right after the commits: no shutdown, no relay round
        await child.wait()
        log.close()
    assert child.returncode == -signal.SIGKILL

    settings = settings_for(data_dir, database_url)
    async with opened(settings) as db:
        schema = await _schema_of(db, done["tenant"])
        waiting = await unsent(db, schema)
    assert sorted(waiting.values()) == sorted(
        [
            "core.user.created",
            "core.workspace.created",
            "core.workspace.member.added",
            "core.tenant.suspended",
            "core.tenant.resumed",
        ]
    )

    recorder = CoreRecorder()
    async with Platform(settings, plugins=[recorder]) as platform:  # the restarted host
        await platform.relay.drain()
        join = getattr(platform.bus, "join", None)
        assert join is not None
        await asyncio.wait_for(join(), timeout=10)
        delivered = {e.id: e for e in recorder.events}
        assert set(waiting) <= set(delivered), "an event committed before the crash was never published"
        assert {delivered[i].type for i in waiting} == set(waiting.values())
        made = next(delivered[i] for i in waiting if delivered[i].type == "core.workspace.created")
        assert made.subject == done["workspace"] and made.tenantid == done["tenant"]
        async with opened(settings) as db:
            assert await unsent(db, schema) == {}


async def _schema_of(db: Database, tenant_id: str) -> str:
    async with db.core_connection() as conn:
        return (await TenantRepository().get_by_id(conn, tenant_id)).schema


# ------------------------------------------------------------------ rollback


class _FailingAfter:
    """An ``EventRecorder`` that writes the event for real, then fails the transaction it is in."""

    def __init__(self, inner: EventRecorder) -> None:
        self.inner = inner
        self.written: list[Event] = []

    async def record(
        self,
        conn: AsyncConnection,
        event_type: str,
        data: Mapping[str, Any],
        ctx: TenantContext | None,
        *,
        subject: str | None = None,
    ) -> Event:
        self.written.append(await self.inner.record(conn, event_type, data, ctx, subject=subject))
        raise RuntimeError("the change failed after its event was written")


async def test_a_rolled_back_change_writes_no_event(database_url: str | None, tmp_path: Path) -> None:
    recorder = CoreRecorder()
    settings = settings_for(tmp_path / "data", database_url)
    async with Platform(settings, plugins=[recorder]) as platform:
        tenant = await platform.tenants.provision("acme")
        ctx = tenant_context_of(tenant)
        await platform.users.admit(ctx, Principal(id="ann", tenant_slug="acme", username="ann"))
        failing = _FailingAfter(platform.core_events)
        platform.workspaces.events = failing
        platform.tenants.events = failing

        with pytest.raises(RuntimeError):
            await platform.workspaces.create(ctx, Actor(user_id="ann", can_create=True), name="Gone")
        with pytest.raises(RuntimeError):  # a core transaction (``core.outbox``) rolls back the same way
            await platform.tenants.suspend("acme")
        assert [e.type for e in failing.written] == ["core.workspace.created", "core.tenant.suspended"]

        await platform.relay.drain()
        join = getattr(platform.bus, "join", None)
        assert join is not None
        await asyncio.wait_for(join(), timeout=10)
        async with opened(settings) as db:
            assert await unsent(db, tenant.schema) == {}
            async with db.core_connection() as conn:
                ids = [e.id for e in failing.written]
                assert not (
                    await conn.execute(sa.select(core_outbox.c.seq).where(core_outbox.c.event_id.in_(ids)))
                ).all()
        assert (await platform.tenants.get("acme")).status == "active"
        assert not {e.id for e in recorder.events} & {e.id for e in failing.written}
        assert sorted(e.type for e in recorder.events) == ["core.tenant.created", "core.user.created"]
        async with platform.db.tenant_connection(tenant.schema) as conn:  # the workspace went with its event
            assert not (await conn.execute(sa.select(workspaces.c.id))).all()
