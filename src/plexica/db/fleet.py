"""Fleet migration: ``core``, then every tenant's base stream and installed plugin streams.

The plan comes from three queries (tenants, installs, ledger) and each stream's head, computed
once: a tenant whose ledger rows are at their targets is skipped without opening its schema, so
a fleet with nothing pending costs milliseconds however many tenants it has. Pending tenants are
migrated by a bounded pool of workers, each tenant in one transaction (see
:class:`~plexica.db.migrator.TenantMigrator`). By default the first failure stops the run: the
failed tenant is rolled back and recorded, tenants not started yet are reported ``skipped``, and
a re-run picks up from the ledger.

Given the tenant service, a run also leaves each tenant as ``plexica plugins upgrade`` would: a
plugin whose tables moved, or whose loaded version differs from the tenant's recorded one, gets
:meth:`~plexica.tenancy.service.TenantService.finish_upgrade` (version recorded, upgrade hook
called) once its tenant's migration committed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, final

import attrs

from plexica.db.engine import Database
from plexica.db.fleet_lock import FleetLock, LockHolder
from plexica.db.ledger import LedgerEntry, read_ledger, record_failure, record_success
from plexica.db.migrations import TENANT_STREAM, MigrationStream, Transition
from plexica.db.migrator import MigrationError, TenantMigrator, error_reason
from plexica.db.replay import Replay, StaleLedgerError, capture_transition, replay
from plexica.db.templates import TemplateProvisioner
from plexica.tenancy.repository import TenantPlugin, TenantRepository
from plexica_sdk.errors import BackendUnavailableError
from plexica_sdk.types import TenantInfo

if TYPE_CHECKING:  # the service is handed in; the fleet never builds one
    from plexica.tenancy.service import TenantService

logger = logging.getLogger(__name__)

__all__ = ["FleetMigrator", "FleetReport", "StreamChange", "StreamState", "TenantResult", "VersionChange"]

TenantOutcome = Literal["up-to-date", "migrated", "failed", "skipped"]

#: Tenants whose schemas ``plexica migrate`` keeps at head (provisioning ones finish by retrying).
MIGRATED_STATUSES = ("active", "suspended")


@attrs.frozen
class StreamChange:
    stream: str
    before: str | None
    after: str | None


@attrs.frozen
class VersionChange:
    """A plugin's recorded version for one tenant, before and after its upgrade hook ran."""

    plugin: str
    before: str
    after: str


@attrs.frozen
class TenantResult:
    """What the run did to one tenant."""

    slug: str
    schema: str
    outcome: TenantOutcome
    changes: tuple[StreamChange, ...] = ()
    error: str | None = None
    duration_ms: int = 0
    #: Plugins whose upgrade was finished (version recorded, ``plexica_plugin_upgraded`` called).
    upgraded: tuple[VersionChange, ...] = ()


@attrs.frozen
class FleetReport:
    """The outcome of one ``plexica migrate`` run."""

    core: str | None
    heads: dict[str, str | None]
    concurrency: int
    canary: int
    results: tuple[TenantResult, ...]
    stopped: bool
    wall_ms: int
    #: Tenants the ledger showed at head: not opened, not in ``results``.
    up_to_date: int = 0
    #: Warm spare schemas created after the run (PostgreSQL).
    spares_created: int = 0

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(("up-to-date", "migrated", "failed", "skipped"), 0)
        counts["up-to-date"] = self.up_to_date
        for result in self.results:
            counts[result.outcome] += 1
        return counts

    @property
    def ok(self) -> bool:
        return not any(r.outcome in ("failed", "skipped") for r in self.results)


@attrs.frozen
class StreamState:
    """Where one tenant stands on one stream, from the ledger (``plexica migrate status``)."""

    slug: str
    schema: str
    tenant_status: str
    stream: str
    revision: str | None
    target: str | None
    state: Literal["current", "pending", "failed", "unknown"]
    error: str | None = None
    applied_at: dt.datetime | None = None


@attrs.frozen
class _Job:
    tenant: TenantInfo
    #: Pending streams: (stream, revision per the ledger, target revision).
    streams: tuple[tuple[MigrationStream, str | None, str], ...]
    #: Every stream of the tenant, pending or not, the same way: where a replay starts from.
    state: tuple[tuple[MigrationStream, str | None, str | None], ...]
    #: Enabled installs of loaded plugins: (plugin, recorded version, pinned revision).
    installs: tuple[tuple[str, str, str | None], ...] = ()

    def signature(self) -> tuple[tuple[str, str, str | None, str | None], ...]:
        return tuple((s.name, s.script_location, before, target) for s, before, target in self.state)


@final
class FleetMigrator:
    """Plans and runs migrations over every tenant; reports per tenant.

    ``tenants``: finish each plugin upgrade as ``plexica plugins upgrade`` does (None: schemas only).
    """

    def __init__(
        self,
        db: Database,
        migrator: TenantMigrator,
        templates: TemplateProvisioner | None = None,
        *,
        tenants: TenantService | None = None,
    ) -> None:
        self.db = db
        self.migrator = migrator
        self.templates = templates
        self.tenants = tenants
        self.repo = TenantRepository()

    def _targets(self, installs: dict[str, TenantPlugin]) -> list[tuple[MigrationStream, str | None]]:
        """Each stream a tenant should have and the revision it should be at (None: no revisions)."""
        targets: list[tuple[MigrationStream, str | None]] = [(TENANT_STREAM, TENANT_STREAM.head)]
        for name in sorted(installs):
            install = installs[name]
            stream = self.migrator.plugin_stream(name)
            if stream is not None and install.status == "enabled":
                targets.append((stream, install.target_revision or stream.head))
        return targets

    def _installs(self, installs: dict[str, TenantPlugin]) -> tuple[tuple[str, str, str | None], ...]:
        """The enabled installs of loaded plugins, when upgrades are finished here (else none)."""
        if self.tenants is None:
            return ()
        plugins = self.migrator.plugins
        return tuple(
            (name, install.version, install.target_revision)
            for name, install in sorted(installs.items())
            if install.status == "enabled" and plugins.get(name) is not None
        )

    def _version(self, plugin: str) -> str:
        loaded = self.migrator.plugins.get(plugin)
        return loaded.manifest.version if loaded is not None else "0"

    async def _load(
        self, statuses: Collection[str] | None
    ) -> tuple[Sequence[TenantInfo], dict[str, dict[str, TenantPlugin]], dict[tuple[str, str], LedgerEntry]]:
        async with self.db.core_connection() as conn:
            tenants = await self.repo.list(conn, statuses=statuses)
            return tenants, await self.repo.all_plugins(conn), await read_ledger(conn)

    async def plan(self, *, verify: bool = False, slugs: Collection[str] | None = None) -> tuple[list[_Job], int]:
        """The tenants with pending streams or plugin versions, in slug order, and how many are up to date.

        ``verify`` ignores the ledger: every tenant's streams are checked against their version tables.
        A plugin version is pending when the tenant's recorded one is not the loaded one (only with
        ``tenants``).
        """
        tenants, installs, ledger = await self._load(MIGRATED_STATUSES)
        jobs: list[_Job] = []
        current = 0
        for tenant in tenants:
            if slugs is not None and tenant.slug not in slugs:
                continue
            pending = []
            state = []
            plugins = self._installs(installs.get(tenant.id, {}))
            for stream, target in self._targets(installs.get(tenant.id, {})):
                entry = ledger.get((tenant.schema, stream.name))
                revision = entry.revision if entry is not None else None
                state.append((stream, revision, target))
                up_to_date = entry is not None and entry.outcome == "ok" and revision == target
                if target is not None and (verify or not up_to_date):
                    pending.append((stream, revision, target))
            if pending or any(version != self._version(name) for name, version, _ in plugins):
                jobs.append(_Job(tenant, tuple(pending), tuple(state), plugins))
            else:
                current += 1
        return jobs, current

    async def run(
        self,
        *,
        concurrency: int = 4,
        canary: int = 0,
        keep_going: bool = False,
        verify: bool = False,
        slugs: Collection[str] | None = None,
        spares: int | None = None,
        replay: bool = True,
        on_plan: Callable[[int, int], None] | None = None,
        on_result: Callable[[TenantResult], None] | None = None,
        wait: bool = True,
        on_wait: Callable[[LockHolder], None] | None = None,
    ) -> FleetReport:
        """Migrate ``core``, then every pending tenant, holding the fleet lock throughout.

        One run at a time across every process and host (:mod:`plexica.db.fleet_lock`): a second
        run waits for the first, then plans from the ledger the first left, so it finds nothing
        or only what changed since.

        Args:
            concurrency: tenants migrated at once; capped by the database's connection limit.
            canary: migrate this many tenants first and stop there if any of them fails.
            keep_going: carry on after a failure instead of stopping (canary failures still stop).
            verify: ignore the ledger and check each tenant's version tables (slow; repairs the ledger).
            slugs: only these tenants.
            replay: on PostgreSQL, run each distinct transition once with Alembic and replay its
                SQL in the other tenants (:mod:`plexica.db.replay`); False runs Alembic per tenant.
            spares: warm spare schemas to keep at head afterwards (None: as many as there are);
                stale spares are replaced. Needs ``templates``; only when nothing failed.
            on_plan: called with (pending, up to date) once the plan is known.
            on_result: called as each pending tenant finishes (or is skipped).
            wait: wait for a run elsewhere to finish; False raises :class:`FleetLockedError` instead.
            on_wait: called once with the lock's holder before waiting for it.

        Raises:
            BackendUnavailableError: the database is down; tenants finished so far stay migrated.
            FleetLockedError: another run holds the fleet lock and ``wait`` is False.
        """
        # DDL and lock waits may outlast any request: no statement timeout for the run (its tasks inherit this).
        with self.db.unbounded_statements():
            async with FleetLock(self.db, "migrate").hold(wait=wait, on_wait=on_wait):
                return await self._run(
                    concurrency=concurrency,
                    canary=canary,
                    keep_going=keep_going,
                    verify=verify,
                    slugs=slugs,
                    spares=spares,
                    replay=replay,
                    on_plan=on_plan,
                    on_result=on_result,
                )

    async def _run(
        self,
        *,
        concurrency: int,
        canary: int,
        keep_going: bool,
        verify: bool,
        slugs: Collection[str] | None,
        spares: int | None,
        replay: bool,
        on_plan: Callable[[int, int], None] | None,
        on_result: Callable[[TenantResult], None] | None,
    ) -> FleetReport:
        started = time.perf_counter()
        self._captures: dict[Any, Replay] | None = (
            {} if replay and not verify and self.db.dialect == "postgresql" else None
        )
        self._capturing = asyncio.Lock()
        core = await self.migrator.migrate_core()
        jobs, current = await self.plan(verify=verify, slugs=slugs)
        if on_plan is not None:
            on_plan(len(jobs), current)
        limit = max(1, min(concurrency, self.db.max_connections))
        waves = [jobs[:canary], jobs[canary:]] if canary > 0 else [jobs]
        results: list[TenantResult] = []
        stopped = False
        for number, wave in enumerate(waves):
            if stopped:
                for job in wave:
                    results.append(self._skipped(job, on_result))
                continue
            failed = await self._run_wave(wave, limit, keep_going, results, on_result)
            stopped = failed and (not keep_going or (canary > 0 and number == 0))
        heads = {TENANT_STREAM.name: TENANT_STREAM.head}
        for job in jobs:
            heads.update((stream.name, stream.head) for stream, _, _ in job.streams)
        created = 0
        if self.templates is not None and not stopped:
            streams = self.migrator.streams_for(self.migrator.plugins.installable)
            created = await self.templates.refill(streams, spares)
        return FleetReport(
            core=core,
            heads=heads,
            concurrency=limit,
            canary=canary,
            results=tuple(sorted(results, key=lambda r: r.slug)),
            stopped=stopped,
            wall_ms=round((time.perf_counter() - started) * 1000),
            up_to_date=current,
            spares_created=created,
        )

    async def _run_wave(
        self,
        wave: list[_Job],
        limit: int,
        keep_going: bool,
        results: list[TenantResult],
        on_result: Callable[[TenantResult], None] | None,
    ) -> bool:
        queue: Iterator[_Job] = iter(wave)
        failed = False

        async def worker() -> None:
            nonlocal failed
            for job in queue:  # one shared iterator: each job goes to exactly one worker
                if failed and not keep_going:
                    results.append(self._skipped(job, on_result))
                    continue
                result = await self._migrate(job)
                failed = failed or result.outcome == "failed"
                results.append(result)
                if on_result is not None:
                    on_result(result)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(limit, len(wave))):
                    group.create_task(worker())
        except* BackendUnavailableError as errors:
            raise errors.exceptions[0] from None
        return failed

    async def _migrate(self, job: _Job) -> TenantResult:
        started = time.perf_counter()
        tenant = job.tenant
        moves: dict[str, Transition] | None = {}
        try:
            if job.streams:
                moves = await self._replayed(job, started)
            if moves is None:
                moves = await self.migrator.migrate(
                    tenant.schema, [(stream, target) for stream, _, target in job.streams], tenant_id=tenant.id
                )
        except MigrationError as exc:
            return TenantResult(
                tenant.slug,
                tenant.schema,
                "failed",
                error=f"{exc.stream}: {exc.reason}",
                duration_ms=round((time.perf_counter() - started) * 1000),
            )
        changes = tuple(StreamChange(name, move.before, move.after) for name, move in moves.items())
        upgraded: list[VersionChange] = []
        error = None
        try:
            await self._finish_upgrades(job, moves, upgraded)
        except BackendUnavailableError:
            raise
        except Exception as exc:  # the hook's failure fails the tenant; its version stays recorded
            error = f"plugin {upgraded[-1].plugin} upgrade: {error_reason(exc)}"
        moved = any(c.before != c.after for c in changes) or upgraded
        return TenantResult(
            tenant.slug,
            tenant.schema,
            "failed" if error else "migrated" if moved else "up-to-date",
            changes,
            error=error,
            duration_ms=round((time.perf_counter() - started) * 1000),
            upgraded=tuple(upgraded),
        )

    async def _finish_upgrades(self, job: _Job, moves: dict[str, Transition], upgraded: list[VersionChange]) -> None:
        """Finish the upgrade of each plugin whose tables moved or whose recorded version is stale.

        Appends each plugin to ``upgraded`` before finishing it, so a failure names the plugin.
        """
        if self.tenants is None:
            return
        for plugin, recorded, pin in job.installs:
            stream = self.migrator.plugin_stream(plugin)
            move = moves.get(stream.name) if stream is not None else None
            version = self._version(plugin)
            if recorded == version and (move is None or move.before == move.after):
                continue
            upgraded.append(VersionChange(plugin, recorded, version))
            await self.tenants.finish_upgrade(job.tenant, plugin, recorded, pin=pin)

    async def _replayed(self, job: _Job, started: float) -> dict[str, Transition] | None:
        """Migrate ``job`` by replay; None when it must go through Alembic instead.

        Raises:
            MigrationError: the replay failed (rolled back, and recorded in the ledger).
        """
        if self._captures is None:
            return None
        key = job.signature()
        async with self._capturing:  # one capture per distinct transition, however many workers
            captured = self._captures.get(key)
            if captured is None:
                try:
                    captured = await capture_transition(self.db, job.state)
                except BackendUnavailableError:
                    raise
                except Exception as exc:  # e.g. a ledger naming a revision the scripts lack: Alembic reports it
                    logger.warning("cannot capture a transition; using Alembic", extra={"error": error_reason(exc)})
                    captured = Replay("", "", (), {}, replayable=False)
                self._captures[key] = captured
        if not captured.replayable:
            return None
        schema, first = job.tenant.schema, job.streams[0]
        moves = {s.name: captured.moves.get(s.name, Transition(before, target)) for s, before, target in job.streams}
        try:
            async with self.db.tenant_connection(schema) as conn:
                await replay(conn, captured, schema)
                revisions = {name: move.after for name, move in moves.items()}
                duration = round((time.perf_counter() - started) * 1000)
                await record_success(conn, schema, revisions, tenant_id=job.tenant.id, duration_ms=duration)
        except StaleLedgerError:
            return None
        except BackendUnavailableError:
            raise
        except Exception as exc:
            reason = error_reason(exc)
            async with self.db.core_connection() as conn:
                duration = round((time.perf_counter() - started) * 1000)
                await record_failure(
                    conn,
                    schema,
                    first[0].name,
                    tenant_id=job.tenant.id,
                    target=first[2],
                    error=reason,
                    duration_ms=duration,
                )
            raise MigrationError(schema, first[0].name, first[2], reason) from exc
        return moves

    @staticmethod
    def _skipped(job: _Job, on_result: Callable[[TenantResult], None] | None) -> TenantResult:
        result = TenantResult(job.tenant.slug, job.tenant.schema, "skipped", error="not started: the run stopped")
        if on_result is not None:
            on_result(result)
        return result

    async def status(self) -> list[StreamState]:
        """Every tenant's position on each of its streams, from the ledger alone."""
        tenants, installs, ledger = await self._load(None)
        states: list[StreamState] = []
        for tenant in tenants:
            for stream, target in self._targets(installs.get(tenant.id, {})):
                entry = ledger.get((tenant.schema, stream.name))
                if entry is None:
                    state: Literal["current", "pending", "failed", "unknown"] = "unknown"
                elif entry.outcome == "failed":
                    state = "failed"
                else:
                    state = "current" if entry.revision == target else "pending"
                states.append(
                    StreamState(
                        slug=tenant.slug,
                        schema=tenant.schema,
                        tenant_status=tenant.status,
                        stream=stream.name,
                        revision=entry.revision if entry else None,
                        target=target,
                        state=state,
                        error=entry.error if entry and entry.outcome == "failed" else None,
                        applied_at=entry.applied_at if entry else None,
                    )
                )
        return states
