"""Health probes: every configured dependency checked at once, each within a bound, with its latency.

A :class:`Probe` names one dependency and how to check it; ``required`` says whether the host
is unusable without it (``/health`` answers 503) or merely degraded (200). :class:`HealthChecker`
runs its probes concurrently, each under the same timeout, so a hung dependency reports
``timeout`` and the whole check never takes much longer than one timeout. Backends that can be
checked expose ``async def ping()`` (the :class:`Pingable` protocol); :func:`standard_probes`
turns the configured ones into probes, and :meth:`HealthChecker.add` is where later probes (remote
plugins) come in. See ``docs/observability.md`` for which dependencies are required and why.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Literal, Protocol, final, runtime_checkable

import attrs

from plexica_sdk.errors import PlexicaError

__all__ = [
    "CheckStatus",
    "HealthChecker",
    "HealthReport",
    "HealthStatus",
    "Pingable",
    "Probe",
    "ProbeResult",
    "standard_probes",
]

#: One dependency's state: it answered, it failed, or it did not answer within the timeout.
CheckStatus = Literal["ok", "unavailable", "timeout"]
#: The host's state: all answered; only optional ones failed (200); a required one failed (503).
HealthStatus = Literal["ok", "degraded", "unavailable"]

_DETAIL_MAX = 200


@runtime_checkable
class Pingable(Protocol):
    """A backend that can say cheaply whether it answers: returns, or raises when it does not."""

    async def ping(self) -> None: ...


@final
@attrs.frozen(kw_only=True)
class Probe:
    """One dependency of ``/health``.

    Attributes:
        name: the key in the report (``database``, ``cache``, ``broker``, ...).
        check: returns when the dependency answers; any exception means it does not.
        required: the host cannot serve without it, so its failure makes ``/health`` a 503.
        describe: the dependency's own state, shown beside the check (a remote plugin's breaker).
    """

    name: str
    check: Callable[[], Awaitable[object]]
    required: bool = True
    describe: Callable[[], Mapping[str, object]] | None = None


@final
@attrs.frozen(kw_only=True)
class ProbeResult:
    """What one probe found, and how long it took (``latency_ms``, up to the timeout)."""

    name: str
    status: CheckStatus
    latency_ms: float
    required: bool
    #: Why it failed (the error's message, cut short); ``None`` when it answered.
    detail: str | None = None
    #: What the probe's ``describe`` said (``{"breaker": {...}}`` for a remote plugin).
    state: Mapping[str, object] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_json(self) -> dict[str, object]:
        body: dict[str, object] = {"status": self.status, "latency_ms": self.latency_ms, "required": self.required}
        if self.detail is not None:
            body["detail"] = self.detail
        if self.state is not None:
            body.update(self.state)
        return body


@final
@attrs.frozen
class HealthReport:
    """Every probe's result, in the probes' order."""

    checks: tuple[ProbeResult, ...]

    @property
    def status(self) -> HealthStatus:
        if any(not c.ok and c.required for c in self.checks):
            return "unavailable"
        return "ok" if all(c.ok for c in self.checks) else "degraded"

    @property
    def healthy(self) -> bool:
        """No required dependency is down (``/health`` answers 200)."""
        return self.status != "unavailable"


@final
class HealthChecker:
    """The probes of one host, run concurrently under a per-probe timeout.

    Args:
        probes: the dependencies to check; names must be unique.
        timeout_seconds: how long each probe may take before it counts as ``timeout``. The probes
            run at once, so this bounds the whole check too.
        public_details: show anonymous callers each check and the plugins loaded; else they
            get only the overall status (production: plugin names and dependency errors tell an
            attacker what runs where).
        token: a secret that unlocks the details when sent as ``X-Health-Token``.

    Raises:
        ValueError: two probes share a name.
    """

    def __init__(
        self,
        probes: Iterable[Probe],
        *,
        timeout_seconds: float,
        public_details: bool = False,
        token: str | None = None,
    ) -> None:
        self._probes: dict[str, Probe] = {}
        self.timeout_seconds = timeout_seconds
        self.public_details = public_details
        self._token = token
        self._in_flight: dict[str, asyncio.Task[object]] = {}
        for probe in probes:
            self.add(probe)

    @property
    def probes(self) -> Sequence[Probe]:
        return tuple(self._probes.values())

    def add(self, probe: Probe) -> None:
        """Check one more dependency from now on (the extension point for remote plugins).

        Raises:
            ValueError: a probe of that name exists already.
        """
        if probe.name in self._probes:
            raise ValueError(f"a health probe named {probe.name!r} exists already")
        self._probes[probe.name] = probe

    def discloses_to(self, *, token: str | None, super_admin: bool) -> bool:
        """Whether a caller sending ``token`` (``X-Health-Token``) may see the details."""
        if self.public_details or super_admin:
            return True
        if self._token is None or token is None:
            return False
        return hmac.compare_digest(token.encode(), self._token.encode())

    async def check(self, names: Iterable[str] | None = None) -> HealthReport:
        """Run the probes (all, or those named) at once; never raises, never waits past the timeout."""
        wanted = self.probes if names is None else [self._probes[name] for name in names]
        return HealthReport(tuple(await asyncio.gather(*(self._run(probe) for probe in wanted))))

    async def _run(self, probe: Probe) -> ProbeResult:
        """One probe's result. Concurrent checks share one call per probe, so polling cannot pile up.

        The call is waited for, not awaited: a cancelled database ping may spend seconds in its
        driver's cleanup, and the answer must not wait for that. Until the call has ended, later
        checks join it (and report ``timeout`` if it does not end in their time), so a frozen
        dependency holds at most one call per probe.
        """
        started = time.perf_counter()
        call = self._in_flight.get(probe.name)
        if call is None:
            call = asyncio.create_task(_call(probe.check), name=f"plexica-health-{probe.name}")
            self._in_flight[probe.name] = call
            call.add_done_callback(functools.partial(self._settled, probe.name))
        done, _ = await asyncio.wait({call}, timeout=self.timeout_seconds)
        status: CheckStatus = "ok"
        detail: str | None = None
        if not done or call.cancelled():
            call.cancel()
            status, detail = "timeout", f"no answer within {self.timeout_seconds:g} s"
        elif (error := call.exception()) is not None:
            status = "timeout" if isinstance(error, TimeoutError) else "unavailable"
            detail = _describe(error)
        latency = round((time.perf_counter() - started) * 1000, 1)
        state = probe.describe() if probe.describe is not None else None
        return ProbeResult(
            name=probe.name, status=status, latency_ms=latency, required=probe.required, detail=detail, state=state
        )

    def _settled(self, name: str, call: asyncio.Task[object]) -> None:
        if self._in_flight.get(name) is call:
            del self._in_flight[name]
        if not call.cancelled():
            call.exception()  # retrieved here: a straggler's failure was reported as a timeout already


async def _call(check: Callable[[], Awaitable[object]]) -> object:
    return await check()


def standard_probes(
    *,
    database: Pingable,
    cache: object = None,
    broker: object = None,
    objects: object = None,
    identity: object = None,
    cache_required: bool = False,
) -> list[Probe]:
    """The probes of the configured dependencies: each backend that can be pinged gets one.

    In-process backends (the memory cache and bus) have no ``ping`` and no probe: they cannot be
    down while the process answers. The database and the broker are required; the cache only when
    ``cache_required`` (a rate limiter that fails closed, gateway replay checks), since the host's
    own caches fall back to the database; the object store and the identity provider only degrade
    the host (the routes that need them fail, tokens already issued still verify with cached keys).
    """
    probes = [Probe(name="database", check=database.ping, required=True)]
    for name, backend, required in (
        ("cache", cache, cache_required),
        ("broker", broker, True),
        ("object_store", objects, False),
        ("identity", identity, False),
    ):
        if isinstance(backend, Pingable):
            probes.append(Probe(name=name, check=backend.ping, required=required))
    return probes


def _describe(exc: BaseException) -> str:
    """A short reason: a Plexica error's message (written to name no secret), else the error's class."""
    text = str(exc) if isinstance(exc, PlexicaError) else type(exc).__name__
    return text if len(text) <= _DETAIL_MAX else text[: _DETAIL_MAX - 1] + "…"
