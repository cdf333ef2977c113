"""The health checker's rules: bounded time, one call per probe in flight, required vs degraded."""

from __future__ import annotations

import asyncio
import time

import pytest

from plexica.observability.health import HealthChecker, Probe, standard_probes
from plexica_sdk.errors import BackendUnavailableError

pytestmark = pytest.mark.anyio


class Dependency:
    """A dependency whose answer the test controls: it answers, fails, or hangs until released."""

    def __init__(self) -> None:
        self.calls = 0
        self.failing = False
        self.released = asyncio.Event()
        self.released.set()

    async def ping(self) -> None:
        self.calls += 1
        await self.released.wait()
        if self.failing:
            raise BackendUnavailableError("thing", "refused")


async def test_report_is_degraded_for_optional_and_unavailable_for_required_failures() -> None:
    required, optional = Dependency(), Dependency()
    checker = HealthChecker(
        [Probe(name="db", check=required.ping), Probe(name="store", check=optional.ping, required=False)],
        timeout_seconds=1.0,
    )
    assert (await checker.check()).status == "ok"
    optional.failing = True
    report = await checker.check()
    assert (report.status, report.healthy) == ("degraded", True)
    assert report.checks[1].detail == "thing is unavailable: refused"
    required.failing = True
    assert ((await checker.check()).status, (await checker.check()).healthy) == ("unavailable", False)


async def test_a_hung_probe_times_out_and_later_checks_join_it_instead_of_piling_up() -> None:
    hung = Dependency()
    hung.released.clear()
    checker = HealthChecker([Probe(name="db", check=hung.ping)], timeout_seconds=0.1)
    started = time.perf_counter()
    reports = await asyncio.gather(*(checker.check() for _ in range(20)))
    assert time.perf_counter() - started < 1.0
    assert {r.checks[0].status for r in reports} == {"timeout"} and hung.calls == 1
    hung.released.set()
    assert (await checker.check()).status == "ok" and hung.calls == 2


async def test_probe_names_are_unique_and_only_pingable_backends_get_one() -> None:
    db = Dependency()
    probes = standard_probes(database=db, cache=object(), broker=Dependency(), objects=None)
    assert [(p.name, p.required) for p in probes] == [("database", True), ("broker", True)]
    checker = HealthChecker(probes, timeout_seconds=1.0)
    with pytest.raises(ValueError, match="broker"):
        checker.add(Probe(name="broker", check=db.ping))


def test_the_cache_is_required_only_when_asked() -> None:
    """The host's caches fall back to the database; fail-closed limits and gateway mode need Redis."""
    cache = Dependency()
    optional = standard_probes(database=Dependency(), cache=cache)
    required = standard_probes(database=Dependency(), cache=cache, cache_required=True)
    assert [(p.name, p.required) for p in optional] == [("database", True), ("cache", False)]
    assert [(p.name, p.required) for p in required] == [("database", True), ("cache", True)]


def test_details_need_public_mode_the_token_or_a_super_admin() -> None:
    checker = HealthChecker([], timeout_seconds=1.0, token="s3cret")
    assert checker.discloses_to(token="s3cret", super_admin=False)
    assert checker.discloses_to(token=None, super_admin=True)
    assert not checker.discloses_to(token="s3cre", super_admin=False)
    assert not checker.discloses_to(token="sécret", super_admin=False)  # non-ASCII must not raise
    assert not HealthChecker([], timeout_seconds=1.0).discloses_to(token="", super_admin=False)
    assert HealthChecker([], timeout_seconds=1.0, public_details=True).discloses_to(token=None, super_admin=False)
