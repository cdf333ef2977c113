"""Redis down: the host's caches fall back to the database, rate limits follow their fail mode, revocations hold.

A Redis of the test's own is killed under load and started again (empty, as a restarted Redis
without persistence is). With ``rate_limit.fail_mode = "open"`` (the default) every request keeps
working from the database, slower; a grant revoked and a user disabled while Redis is down are
refused at once, and stay refused once it is back; caching resumes by itself. With ``"closed"``
limited routes answer 503 problems until Redis answers again. ``tests/plexica/cache/test_fallback.py``
covers the partition case (Redis keeps its data but cannot be reached).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from pathlib import Path
from typing import Any

import pytest

from plexica.tenancy.directory import config_key
from plexica.tenancy.service import tenant_context_of
from plexica_sdk.errors import BackendUnavailableError
from plexica_sdk.testing.host import RunningHost
from tests.faults.support import OUTAGE_SECONDS, Load, clean_503, own_redis, report, running_host, until
from tests.plexica.db.support import fresh_postgres_database

pytestmark = [pytest.mark.anyio, pytest.mark.faults]

NOTES = "/api/plugins/notes/notes"


def limits(fail_mode: str) -> dict[str, Any]:
    """Rate limits on, with quotas the load cannot reach: only the fail mode is under test."""
    return {"enabled": True, "fail_mode": fail_mode, "plans": {"standard": {"requests": 10_000_000}}}


def auth(host: RunningHost, user: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {host.token_for(user, roles or ('member',), 'acme')}"}


async def create(host: RunningHost, headers: dict[str, str]) -> int:
    return (await host.client.post(NOTES, json={"title": "t"}, headers=headers)).status_code


def median_ms(load: Load, phase: str) -> float:
    times = [a.seconds for a in load.answers if a.phase == phase and a.status is not None and a.status < 300]
    return round(statistics.median(times) * 1000, 2) if times else 0.0


async def refused_within(host: RunningHost, headers: dict[str, str], seconds: float) -> float:
    """How long until ``host`` refuses a create with ``headers`` (its L1 may serve the old state briefly)."""

    async def refused() -> bool:
        return await create(host, headers) == 403

    return await until(refused, timeout=seconds, what="the revocation to reach this process")


@pytest.mark.postgres
async def test_redis_down_with_fail_open_serves_from_the_database_and_honours_revocations(
    postgres_url: str, tmp_path: Path
) -> None:
    async with (
        fresh_postgres_database(postgres_url) as url,
        own_redis(tmp_path / "redis") as redis,
        contextlib.AsyncExitStack() as stack,
    ):
        shared = {"database": {"url": url}, "cache": {"redis_url": redis.url}, "rate_limit": limits("open")}
        host = await stack.enter_async_context(running_host(tmp_path / "a", **shared))
        other = await stack.enter_async_context(running_host(tmp_path / "b", **shared))  # a second host process
        platform = host.platform
        ctx = tenant_context_of(await platform.tenants.provision("acme"))
        await platform.plugin_config.set("acme", "notes", {"max_notes": 100_000})
        # Each host has a dev issuer of its own (its key lives in its data directory).
        bob, carol = auth(host, "bob"), auth(host, "carol", "notes-editor")
        bob2, carol2 = auth(other, "bob"), auth(other, "carol", "notes-editor")
        await platform.permission_service.grant(ctx, "notes-editor", user_id="bob")
        pairs = ((host, bob), (host, carol), (other, bob2), (other, carol2))
        assert [await create(each, user) for each, user in pairs] == [201] * 4

        load = Load(host.client, auth(host, "alice", "notes-editor"))
        async with load.running():
            await load.until_ok(40, phase="before")
            await redis.stop()
            down = time.monotonic()
            load.phase = "outage"
            await load.until_ok(40, phase="outage")
            await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down)))
            health = await host.client.get("/health")
            # Revoked while Redis is down: the change commits, the caller gets no error, the next request is refused.
            await platform.permission_service.revoke(ctx, "notes-editor", user_id="bob")
            await platform.users.disable(ctx, "carol", actor_id="alice")
            here = (await create(host, bob), await create(host, carol))
            # The other process heard nothing (no pub/sub): its L1 bound without a subscription applies.
            bound = other.platform.settings.cache.l1_max_age_seconds
            elsewhere = (await refused_within(other, bob2, bound + 2), await refused_within(other, carol2, bound + 2))
            fallbacks = platform.host_cache.fallbacks + other.platform.host_cache.fallbacks
            await redis.start()
            back = time.monotonic()
            load.phase = "after"
            await load.until_ok(40, phase="after")

            # Caching resumes by itself: the shared cache (read raw here) holds the tenant's entry again.
            async def cached() -> bool:
                try:  # the raw cache's first command on a connection from before the restart may fail
                    entry = await platform.cache.get(config_key("acme"))
                except BackendUnavailableError:
                    return False
                return entry is not None and platform.host_cache.available

            await until(cached, timeout=15, what="caching to resume")
            resumed = time.monotonic() - back
        after = [await create(each, user) for each, user in pairs]
        metrics = (await host.client.get("/metrics")).text

    report(
        "redis-down-fail-open",
        outage_seconds=round(back - down, 2),
        answers=load.by_phase(),
        median_ms={phase: median_ms(load, phase) for phase in ("before", "outage", "after")},
        cache_fallbacks=fallbacks,
        revocation_seconds_in_other_process=[round(seconds, 2) for seconds in elsewhere],
        caching_resumed_seconds=round(resumed, 2),
    )
    assert load.unexpected(lambda answer: False) == [], "fail-open: every request works while Redis is down"
    assert load.ok_count("outage") >= 40
    assert health.status_code == 200 and health.json()["checks"]["cache"]["status"] == "unavailable"
    assert health.json()["status"] == "degraded" and health.json()["checks"]["cache"]["required"] is False
    assert here == (403, 403) and after == [403] * 4
    assert fallbacks > 0
    assert 'rate_limit_decisions_total{decision="error_open"}' in metrics
    assert "cache_fallbacks_total" in metrics


async def test_redis_down_with_fail_closed_answers_503_problems_until_it_is_back(tmp_path: Path) -> None:
    async with (
        own_redis(tmp_path / "redis") as redis,
        running_host(tmp_path / "data", cache={"redis_url": redis.url}, rate_limit=limits("closed")) as host,
    ):
        await host.platform.tenants.provision("acme")
        load = Load(host.client, auth(host, "alice", "notes-editor"), concurrency=4)
        async with load.running():
            await load.until_ok(20, phase="before")
            await redis.stop()
            load.phase = "outage"
            await asyncio.sleep(OUTAGE_SECONDS)
            health = await host.client.get("/health")
            refused = await host.client.post(NOTES, json={"title": "t"}, headers=auth(host, "alice", "notes-editor"))
            restarting = time.monotonic()  # requests may succeed from here on, while start() waits for the port
            await redis.start()
            back = time.monotonic()
            load.phase = "after"
            await load.until_ok(20, phase="after")

    report(
        "redis-down-fail-closed",
        outage_seconds=OUTAGE_SECONDS,
        answers=load.by_phase(),
        recovery_seconds=load.recovered_after(back),
    )
    assert refused.status_code == 503 and refused.json()["status"] == 503
    assert health.status_code == 503 and health.json()["checks"]["cache"]["required"] is True
    assert load.unexpected(clean_503) == []
    assert all(a.status == 503 for a in load.answers if a.phase == "outage" and a.ended < restarting)
