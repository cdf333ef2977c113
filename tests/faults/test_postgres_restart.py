"""PostgreSQL restarted under load: clean 503s while it is down, recovery without a host restart, no write lost.

A PostgreSQL of the test's own serves a host while clients create and read notes; it is stopped
twice under that load, once cleanly (``pg_ctl -m fast``: backends are terminated mid-statement) and
once as a crash (``-m immediate``: crash recovery at the next start), each time for
``PLEXICA_FAULT_OUTAGE_SECONDS``. Every answer meanwhile must be a success or a 503 problem (never
a 500, never an exception through the app), the same host must serve again once the server is
back, and every note whose create answered 201 must be in the database, intact.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.faults.support import OUTAGE_SECONDS, Load, clean_503, own_postgres, report, running_host, stored_notes

pytestmark = [pytest.mark.anyio, pytest.mark.faults]


async def test_postgres_restarted_under_load_answers_503_then_recovers_and_loses_no_write(tmp_path: Path) -> None:
    async with own_postgres() as postgres:
        database = {"url": postgres.url, "pool_size": 4, "max_overflow": 2}
        async with running_host(tmp_path / "data", database=database) as host:
            tenant = await host.platform.tenants.provision("acme")
            await host.platform.plugin_config.set("acme", "notes", {"max_notes": 100_000})
            token = host.token_for("alice", ["notes-editor"], "acme")
            load = Load(host.client, {"Authorization": f"Bearer {token}"})
            recovery: dict[str, float | None] = {}
            settled: dict[str, float] = {}
            async with load.running():
                await load.until_ok(40, phase="before")
                for mode in ("fast", "immediate"):
                    load.phase = f"{mode}:outage"
                    await postgres.stop(mode)
                    await asyncio.sleep(OUTAGE_SECONDS)
                    await postgres.start()  # returns once it accepts connections again
                    back = time.monotonic()
                    load.phase = f"{mode}:after"
                    await load.until_ok(40, phase=f"{mode}:after")
                    recovery[mode] = load.recovered_after(back)
                    settled[mode] = round(load.last_failure_after(back), 3)

        stored = await stored_notes(postgres.url, tenant.schema)

    lost, corrupt = load.missing_or_altered(stored)
    outage_503 = sum(1 for a in load.answers if a.phase.endswith(":outage") and a.status == 503)
    report(
        "postgres-restart",
        outage_seconds=OUTAGE_SECONDS,
        answers=load.by_phase(),
        recovery_seconds=recovery,
        last_503_after_restart_seconds=settled,
        slowest_outage_answer_seconds={m: round(load.slowest(f"{m}:outage"), 3) for m in ("fast", "immediate")},
        acknowledged_writes=len(load.acknowledged),
        lost_writes=len(lost),
    )
    assert load.unexpected(clean_503) == [], "only successes and 503 problems are allowed"
    assert outage_503 > 0, "the load never met the outage"
    assert all(seconds is not None for seconds in recovery.values())
    assert lost == [] and corrupt == []
