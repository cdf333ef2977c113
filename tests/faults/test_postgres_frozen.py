"""PostgreSQL frozen under load: every request answered within the timeouts, recovery without a host restart.

A frozen server is worse than a stopped one: its sockets stay open and the kernel still accepts
new connections, but nothing answers, so without timeouts a request waits forever. Here the
host's own PostgreSQL (postmaster and every backend) is stopped with SIGSTOP for
``PLEXICA_FAULT_OUTAGE_SECONDS`` (at least 4 s, so every timeout fires) while clients create and
read notes. Every answer meanwhile must be a success or a 503 problem, none slower than the
database timeouts allow; after SIGCONT the same host must serve again, and every note whose
create answered 201 must be in the database, intact.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.faults.support import OUTAGE_SECONDS, Load, clean_503, own_postgres, report, running_host, stored_notes

pytestmark = [pytest.mark.anyio, pytest.mark.faults]

CONNECT, COMMAND, POOL = 1.0, 2.0, 1.0
#: The slowest a request may answer while the server is frozen: it may wait for the pool, then
#: for a connection, then for one statement; the rest is the test machine's scheduling.
BOUND = CONNECT + COMMAND + POOL + 1.5
FREEZE_SECONDS = max(OUTAGE_SECONDS, 4.0)


async def test_postgres_frozen_under_load_answers_503_in_bounded_time_then_recovers(tmp_path: Path) -> None:
    async with own_postgres() as postgres:
        database = {
            "url": postgres.url,
            "pool_size": 4,
            "max_overflow": 2,
            "connect_timeout_seconds": CONNECT,
            "command_timeout_seconds": COMMAND,
            "pool_timeout_seconds": POOL,
        }
        async with running_host(tmp_path / "data", database=database) as host:
            tenant = await host.platform.tenants.provision("acme")
            await host.platform.plugin_config.set("acme", "notes", {"max_notes": 100_000})
            token = host.token_for("alice", ["notes-editor"], "acme")
            load = Load(host.client, {"Authorization": f"Bearer {token}"})
            async with load.running():
                await load.until_ok(40, phase="before")
                load.phase = "frozen"
                postgres.freeze()
                try:
                    await asyncio.sleep(FREEZE_SECONDS)
                finally:
                    load.phase = "thawed"  # answers to requests sent before this may still come
                    postgres.thaw()
                back = time.monotonic()
                await load.until_ok(40, phase="thawed")
                recovery = load.recovered_after(back)
                settled = load.last_failure_after(back)

        stored = await stored_notes(postgres.url, tenant.schema)

    lost, corrupt = load.missing_or_altered(stored)
    frozen = [a for a in load.answers if a.phase == "frozen"]
    slowest = max(a.seconds for a in load.answers)  # a request sent just before the freeze counts too
    report(
        "postgres-frozen",
        freeze_seconds=FREEZE_SECONDS,
        timeouts={"connect": CONNECT, "command": COMMAND, "pool": POOL},
        answers=load.by_phase(),
        answered_while_frozen=len(frozen),
        slowest_answer_seconds=round(slowest, 3),
        recovery_seconds=recovery,
        last_503_after_thaw_seconds=round(settled, 3),
        acknowledged_writes=len(load.acknowledged),
        lost_writes=len(lost),
    )
    assert load.unexpected(clean_503) == [], "only successes and 503 problems are allowed"
    assert sum(1 for a in frozen if a.status == 503) > 0, "the load never met the freeze"
    assert slowest <= BOUND, f"an answer took {slowest:.2f} s (bound {BOUND} s)"
    assert recovery is not None
    assert lost == [] and corrupt == []
