"""``plexica migrate``: bring ``core`` and every tenant to head; ``plexica migrate status``.

Progress goes to stderr, so ``--json`` output on stdout stays machine-readable. The command exits
non-zero when a tenant failed or was not started, and a re-run resumes from the ledger.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from plexica.cli.output import echo_json
from plexica.db.fleet import FleetMigrator, FleetReport, StreamState, TenantResult
from plexica.db.fleet_lock import LockHolder
from plexica.http.metrics_endpoint import MetricsExposition, serve_metrics_port
from plexica.platform import Platform
from plexica.settings import Settings
from plexica_sdk.converter import unstructure

__all__ = ["migrate", "no_wait_option", "report_waiting", "run_with_platform"]

T = TypeVar("T")

#: Rows of a summary table before it says "... and N more" (``--json`` always has them all).
MAX_ROWS = 30


class _HasSettings(Protocol):
    @property
    def settings(self) -> Settings: ...


def run_with_platform(obj: _HasSettings, work: Callable[[Platform], Awaitable[T]]) -> T:
    """Run ``work`` on an entered :class:`Platform` built from the CLI's settings."""

    async def runner() -> T:
        async with Platform(obj.settings) as platform:
            return await work(platform)

    return asyncio.run(runner())


def report_waiting(holder: LockHolder) -> None:
    """Say on stderr whose run the command waits for (the fleet lock's holder)."""
    click.echo(f"waiting for {holder.describe()}", err=True)


def no_wait_option(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--no-wait``: fail instead of waiting when ``what`` holds the fleet lock."""
    return click.option(
        "--no-wait", is_flag=True, help=f"Exit with an error instead of waiting when {what} holds the fleet lock."
    )


def _revision(value: str | None) -> str:
    return value or "-"


@click.group(invoke_without_command=True)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    default=4,
    show_default=True,
    help="Tenants migrated at once (capped by the database pool).",
)
@click.option("--canary", type=click.IntRange(0), default=0, help="Migrate N tenants first; stop if any fails.")
@click.option("--keep-going", is_flag=True, help="Continue after a failed tenant instead of stopping.")
@click.option("--verify", is_flag=True, help="Ignore the ledger: check every tenant's version tables (slow).")
@click.option(
    "--no-replay",
    is_flag=True,
    help="Run Alembic in every tenant instead of replaying each transition's captured SQL (PostgreSQL).",
)
@click.option("--tenant", "slugs", multiple=True, help="Only this tenant; repeat for several.")
@click.option(
    "--spares",
    type=click.IntRange(0),
    default=None,
    help="Keep N ready-made tenant schemas at head for fast sign-up (PostgreSQL; default: as many as now).",
)
@no_wait_option("another plexica migrate or plugins --all")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def migrate(
    ctx: click.Context,
    concurrency: int,
    canary: int,
    keep_going: bool,
    verify: bool,
    no_replay: bool,
    slugs: tuple[str, ...],
    spares: int | None,
    no_wait: bool,
    as_json: bool,
) -> None:
    """Migrate core, then every tenant's schema and installed plugins to head.

    A plugin whose tables moved or whose version changed is then recorded at its loaded version
    and its upgrade hook called, as ``plexica plugins upgrade`` does (pinned tenants stay pinned).

    Tenants already at head per the migration ledger are skipped without being opened. A failed
    tenant is rolled back and reported; by default the run stops there, and running the command
    again continues where it stopped. One run at a time: a second one waits for the fleet lock
    (PostgreSQL advisory lock, or a lock file next to SQLite's core.db), or fails with --no-wait.
    """
    if ctx.invoked_subcommand is not None:
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=as_json,
    )
    task = progress.add_task("migrating", total=None)

    def on_plan(pending: int, current: int) -> None:
        # Shown only once the database answered and the plan is known: an early error stays one line.
        progress.update(task, total=pending, description=f"migrating ({current} tenants already at head)")
        progress.start()

    def on_result(_result: TenantResult) -> None:
        progress.advance(task)

    async def migrate(platform: Platform) -> FleetReport:
        metrics = platform.metrics

        def planned(pending: int, current: int) -> None:
            on_plan(pending, current)
            metrics.fleet_planned(pending)

        def finished(result: TenantResult) -> None:
            on_result(result)
            metrics.fleet_result(result)

        # With ``metrics.port`` set, the run's progress can be scraped while it lasts (a Kubernetes Job).
        exposition = MetricsExposition(metrics, platform.settings.metrics.token)
        async with serve_metrics_port(platform.settings, exposition):
            fleet = FleetMigrator(platform.db, platform.migrator, platform.tenants.templates, tenants=platform.tenants)
            return await fleet.run(
                concurrency=concurrency,
                canary=canary,
                keep_going=keep_going,
                verify=verify,
                slugs=slugs or None,
                spares=spares,
                replay=not no_replay,
                on_plan=planned,
                on_result=finished,
                wait=not no_wait,
                on_wait=report_waiting,
            )

    try:
        report = run_with_platform(ctx.obj, migrate)
    finally:
        if progress.live.is_started:
            progress.stop()
    if as_json:
        echo_json(_report_json(report))
    else:
        _print_report(report)
    if not report.ok:
        counts = report.counts()
        raise click.ClickException(
            f"{counts['failed']} tenant(s) failed, {counts['skipped']} not started; fix and run again to resume"
        )


def _report_json(report: FleetReport) -> dict[str, Any]:
    return {
        "core": report.core,
        "heads": report.heads,
        "concurrency": report.concurrency,
        "canary": report.canary,
        "stopped": report.stopped,
        "wall_ms": report.wall_ms,
        "spares_created": report.spares_created,
        "counts": report.counts(),
        "tenants": [unstructure(result) for result in report.results],
    }


def _print_report(report: FleetReport) -> None:
    console = Console()
    shown = [r for r in report.results if r.outcome != "up-to-date"]
    if shown:
        table = Table("tenant", "result", "changes", "ms", "error", title="tenants migrated this run")
        for result in shown[:MAX_ROWS]:
            moved = [c for c in result.changes if c.before != c.after]
            changes = ", ".join(
                [f"{c.stream} {_revision(c.before)} → {_revision(c.after)}" for c in moved]
                + [f"{u.plugin} {u.before} → {u.after}" for u in result.upgraded if u.before != u.after]
            )
            table.add_row(result.slug, result.outcome, changes or "-", str(result.duration_ms), result.error or "")
        if len(shown) > MAX_ROWS:
            table.caption = f"... and {len(shown) - MAX_ROWS} more (use --json for all)"
        console.print(table)
    summary = Table("up to date", "migrated", "failed", "not started", "concurrency", "wall time", title="summary")
    counts = report.counts()
    summary.add_row(
        str(counts["up-to-date"]),
        str(counts["migrated"]),
        str(counts["failed"]),
        str(counts["skipped"]),
        str(report.concurrency),
        f"{report.wall_ms / 1000:.2f} s",
    )
    console.print(summary)


@migrate.command("status")
@click.option("--pending", is_flag=True, help="Only streams that are not at their target.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def status(obj: _HasSettings, pending: bool, as_json: bool) -> None:
    """Show which tenant is at which revision of each stream, from the migration ledger."""
    states: Sequence[StreamState] = run_with_platform(
        obj, lambda platform: FleetMigrator(platform.db, platform.migrator).status()
    )
    if pending:
        states = [s for s in states if s.state != "current"]
    if as_json:
        echo_json([unstructure(state) for state in states])
        return
    table = Table("tenant", "status", "stream", "revision", "target", "state", "applied", "error")
    for state in states:
        table.add_row(
            state.slug,
            state.tenant_status,
            state.stream,
            _revision(state.revision),
            _revision(state.target),
            state.state,
            str(state.applied_at)[:19] if state.applied_at else "-",
            state.error or "",
        )
    console = Console()
    console.print(table)
    by_state: dict[str, int] = {}
    for state in states:
        by_state[state.state] = by_state.get(state.state, 0) + 1
    console.print(", ".join(f"{count} {name}" for name, count in sorted(by_state.items())) or "no tenants")
