"""The fault suite's helpers: how big a run is, a host on servers of its own, and a load that records every answer.

The servers a fault test breaks are always its own, started in the test's temporary directory on a
free loopback port (``tests/e2e/private_services.py`` for PostgreSQL and Redis,
``tests/plexica/events/outbox_support.py`` for the Tansu broker); the shared services of
``scripts/services.sh`` are never stopped.

The issue's figures are the full-size run (``PLEXICA_FAULT_EVENTS=10000
PLEXICA_FAULT_OUTAGE_SECONDS=30``); the defaults keep the whole suite under a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Final

import attrs
import httpx2
import pytest
import sqlalchemy as sa
from plexica_plugin_notes import NotesPlugin
from plexica_plugin_notes.models import notes
from sqlalchemy.ext.asyncio import create_async_engine

from plexica.settings import Settings
from plexica_sdk.testing.host import RunningHost, build_settings, start_host
from tests.e2e.private_services import PrivatePostgres, PrivateRedis, free_port, own_postgres, own_redis
from tests.plexica.events.outbox_support import Tansu, own_tansu

__all__ = [
    "CONCURRENCY",
    "EVENTS",
    "OUTAGE_SECONDS",
    "Load",
    "PrivatePostgres",
    "PrivateRedis",
    "Tansu",
    "free_port",
    "own_postgres",
    "own_redis",
    "own_tansu",
    "report",
    "running_host",
    "stored_notes",
    "until",
]


def _number(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


#: Seconds each outage lasts (the issue's full-size run: 30).
OUTAGE_SECONDS: Final = _number("PLEXICA_FAULT_OUTAGE_SECONDS", 1.5)
#: Events published during the broker outage (the issue's full-size run: 10,000).
EVENTS: Final = int(_number("PLEXICA_FAULT_EVENTS", 1000))
#: Concurrent clients of the request load.
CONCURRENCY: Final = int(_number("PLEXICA_FAULT_CONCURRENCY", 8))

#: What no fault test wants in its way: rate limits (the load would be refused) and slow relay polls.
QUIET: Final[dict[str, Any]] = {"rate_limit": {"enabled": False}}


def settings_for(data_dir: Path, **overrides: Any) -> Settings:
    """Test settings (embedded defaults in ``data_dir``) with rate limits off, then ``overrides``."""
    return build_settings(data_dir, {}, **{**QUIET, **overrides})


@contextlib.asynccontextmanager
async def running_host(data_dir: Path, plugins: Iterable[object] = (), **overrides: Any) -> AsyncIterator[RunningHost]:
    """A host app in-process with the notes plugin (and ``plugins``), on the settings ``overrides`` name."""
    async with start_host([NotesPlugin(), *plugins], settings_for(data_dir, **overrides), ["notes"]) as host:
        yield host


def report(fault: str, **figures: object) -> None:
    """Print one line of figures (``pytest -s`` shows it) and append it to ``$PLEXICA_FAULT_REPORT`` if set."""
    line = json.dumps({"fault": fault, **figures}, default=str)
    print(f"FAULT {line}")
    target = os.environ.get("PLEXICA_FAULT_REPORT")
    if target:
        with Path(target).open("a", encoding="utf-8") as out:
            out.write(line + "\n")


@attrs.define(eq=False)
class Answer:
    phase: str
    status: int | None  # None: the request raised instead of answering
    problem: bool  # an application/problem+json body whose status matches
    seconds: float
    ended: float  # time.monotonic() when the answer came
    detail: str = ""


@attrs.define(eq=False)
class Load:
    """Clients that create and read notes until stopped, recording every answer by phase.

    A create that answered 201 is *acknowledged*: it must be in the database afterwards, intact.
    The test moves :attr:`phase` along (``before``, ``outage``, ``after``) as it breaks things.
    """

    client: httpx2.AsyncClient
    headers: dict[str, str]
    url: str = "/api/plugins/notes/notes"
    concurrency: int = CONCURRENCY
    phase: str = "before"
    answers: list[Answer] = attrs.Factory(list)
    acknowledged: dict[str, str] = attrs.Factory(dict)  # note id -> title
    _stop: asyncio.Event = attrs.Factory(asyncio.Event)
    _ok: asyncio.Condition = attrs.Factory(asyncio.Condition)

    def missing_or_altered(self, stored: dict[str, tuple[str, str]]) -> tuple[list[str], list[str]]:
        """The acknowledged notes absent from ``stored`` (lost), and those stored differently (corrupt)."""
        lost = [note for note in self.acknowledged if note not in stored]
        corrupt = [n for n, title in self.acknowledged.items() if n in stored and stored[n] != (title, title * 3)]
        return lost, corrupt

    async def _request(self, method: str, url: str, body: dict[str, Any] | None = None) -> httpx2.Response | None:
        phase, started = self.phase, time.perf_counter()
        try:
            response = await self.client.request(method, url, json=body, headers=self.headers)
        except Exception as exc:  # the app raised through the transport: never acceptable
            took = time.perf_counter() - started
            self.answers.append(Answer(phase, None, False, took, time.monotonic(), repr(exc)[:300]))
            return None
        problem = response.headers.get("content-type", "").startswith("application/problem+json")
        detail = ""
        if problem:
            body_json = response.json()
            problem = body_json.get("status") == response.status_code
            detail = str(body_json.get("detail", ""))[:200]
        elif response.status_code >= 300:
            detail = response.text[:200]
        took = time.perf_counter() - started
        self.answers.append(Answer(phase, response.status_code, problem, took, time.monotonic(), detail))
        if response.status_code < 300:
            async with self._ok:
                self._ok.notify_all()
        return response

    async def _client(self, index: int) -> None:
        mine: list[str] = []
        n = 0
        while not self._stop.is_set():
            n += 1
            title = f"c{index}-{n}-{uuid.uuid4().hex[:8]}"
            response = await self._request("POST", self.url, {"title": title, "body": title * 3})
            if response is not None and response.status_code == 201:
                note = response.json()
                self.acknowledged[note["id"]] = title
                mine.append(note["id"])
            if mine:
                await self._request("GET", f"{self.url}/{mine[n % len(mine)]}")
            if response is None or response.status_code >= 500:
                await asyncio.sleep(0.01)  # a client backs off a little when the host is down

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Load]:
        tasks = [asyncio.create_task(self._client(i)) for i in range(self.concurrency)]
        try:
            yield self
        finally:
            self._stop.set()
            await asyncio.gather(*tasks)

    def ok_count(self, phase: str | None = None) -> int:
        return sum(1 for a in self.answers if a.status is not None and a.status < 300 and phase in (None, a.phase))

    async def until_ok(self, count: int, *, phase: str, timeout: float = 30.0) -> float:
        """Wait until ``count`` requests of ``phase`` succeeded; return the seconds it took."""
        started = time.perf_counter()
        async with asyncio.timeout(timeout), self._ok:
            await self._ok.wait_for(lambda: self.ok_count(phase) >= count)
        return time.perf_counter() - started

    def recovered_after(self, moment: float) -> float | None:
        """Seconds from ``moment`` (``time.monotonic()``) to the first success that ended after it."""
        ends = [a.ended for a in self.answers if a.status is not None and a.status < 300 and a.ended > moment]
        return min(ends) - moment if ends else None

    def last_failure_after(self, moment: float) -> float:
        """Seconds from ``moment`` to the last failed answer after it (0: none failed after it)."""
        ends = [a.ended for a in self.answers if (a.status is None or a.status >= 500) and a.ended > moment]
        return max(ends) - moment if ends else 0.0

    def unexpected(self, allowed: Callable[[Answer], bool]) -> list[Answer]:
        """Answers that are neither a success nor ``allowed`` (the fault's clean failure)."""
        return [a for a in self.answers if not (a.status is not None and a.status < 300) and not allowed(a)]

    def by_phase(self) -> dict[str, dict[str, int]]:
        """``{phase: {"200": n, "503": n, ...}}`` for the figures."""
        counts: dict[str, Counter[str]] = {}
        for answer in self.answers:
            counts.setdefault(answer.phase, Counter())[str(answer.status)] += 1
        return {phase: dict(sorted(c.items())) for phase, c in counts.items()}

    def slowest(self, phase: str) -> float:
        return max((a.seconds for a in self.answers if a.phase == phase), default=0.0)


async def until(check: Callable[[], Awaitable[bool]], *, timeout: float, what: str) -> float:
    """Poll ``check`` until it holds; return the seconds it took (fail the test after ``timeout``)."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def clean_503(answer: Answer) -> bool:
    """A 503 problem (``application/problem+json`` with ``status`` 503): what an outage may answer."""
    return answer.status == 503 and answer.problem


async def stored_notes(url: str, schema: str) -> dict[str, tuple[str, str]]:
    """Every note of ``schema`` as ``{id: (title, body)}``, read on an engine of its own (not the host's)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            bound = await conn.execution_options(schema_translate_map={None: schema})
            rows = (await bound.execute(sa.select(notes.c.id, notes.c.title, notes.c.body))).all()
    finally:
        await engine.dispose()
    return {str(row.id): (row.title, row.body) for row in rows}
