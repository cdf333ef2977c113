"""Prometheus metrics: the seed's six, and what an operator of the framework needs.

Each :class:`Metrics` has its own registry, so several hosts (and tests) in one process never
collide on the global default registry. The reference of every metric is ``docs/metrics.md``.

Hot paths pay little: request and statement metrics cache their label children, plain-integer
counts (permission cache hits, relayed rows) are read only at scrape time, and values that need
IO (active tenants, outbox lag, DLQ size, consumer lag) are refreshed when scraped, each behind a
short cache so frequent scrapers do not load the database or the broker.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Final, final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "OTHER_TENANT", "UNMATCHED_ROUTE", "Metrics", "TenantLabels", "statement_labels"]

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: The ``route`` label of requests no route matched (404s of unknown paths): one series, not one per path.
UNMATCHED_ROUTE: Final = "<unmatched>"
#: The ``tenant_id`` label of tenants beyond the labelled top N.
OTHER_TENANT: Final = "other"
#: The ``table`` label of tables beyond :data:`MAX_TABLES`, and of statements whose table is not parsed.
OTHER_TABLE: Final = "<other>"
MAX_TABLES: Final = 256
_MAX_STATEMENTS: Final = 4096

_SQL_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_IDENT = r'(?:"[^"]+"|`[^`]+`|\[[^\]]+\]|[A-Za-z_][A-Za-z0-9_$]*)'
_QUALIFIED = rf"({_IDENT}(?:\s*\.\s*{_IDENT})*)"
_TABLE_AFTER: Final = {
    "SELECT": re.compile(rf"\bFROM\s+{_QUALIFIED}", re.IGNORECASE),
    "INSERT": re.compile(rf"\bINTO\s+{_QUALIFIED}", re.IGNORECASE),
    "UPDATE": re.compile(rf"^\s*UPDATE\s+{_QUALIFIED}", re.IGNORECASE),
    "DELETE": re.compile(rf"\bFROM\s+{_QUALIFIED}", re.IGNORECASE),
}
_OPERATIONS: Final = frozenset(
    {"SELECT", "INSERT", "UPDATE", "DELETE", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "CREATE",
     "ALTER", "DROP", "PRAGMA", "SET", "SHOW", "ATTACH", "WITH", "LOCK", "TRUNCATE"}
)  # fmt: skip


def statement_labels(statement: str) -> tuple[str, str]:
    """``(operation, table)`` of a SQL statement, parsed cheaply from its first keyword and table.

    The operation is the first keyword (``WITH`` … ``SELECT`` counts as ``SELECT`` when a ``SELECT``
    follows the CTEs; unknown keywords are ``OTHER``); the table is the first one after ``FROM`` /
    ``INTO`` / ``UPDATE``, without its schema (tenant schemas would make it unbounded), lower-cased
    and unquoted; ``""`` when the statement has none.
    """
    head = statement.lstrip()[:16].split(None, 1)
    keyword = head[0].upper().rstrip(";") if head else ""
    operation = keyword if keyword in _OPERATIONS else "OTHER"
    if operation == "WITH":
        found = re.search(r"\)\s*(SELECT|INSERT|UPDATE|DELETE)\b", statement, re.IGNORECASE)
        operation = found.group(1).upper() if found else "SELECT"
    pattern = _TABLE_AFTER.get(operation)
    if pattern is None:
        return operation, ""
    match = pattern.search(statement)
    if match is None:
        return operation, ""
    name = re.split(r"\s*\.\s*", match.group(1))[-1].strip('"`[]').lower()
    return operation, name


@final
class TenantLabels:
    """The cardinality guard of the ``tenant_id`` label: the top ``limit`` tenants by request volume.

    Tenants are admitted first come until ``limit`` are labelled; every ``refresh_seconds`` the
    labelled set becomes the ``limit`` busiest tenants of the period just ended. Every other tenant
    is :data:`OTHER_TENANT`, so a fleet of 2,000 tenants costs at most ``limit + 1`` series per
    route and status. ``limit = 0`` labels no tenant at all.
    """

    def __init__(
        self, limit: int, *, refresh_seconds: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._labelled: set[str] = set()
        self._counts: dict[str, int] = {}
        self._next = clock() + refresh_seconds

    def label(self, tenant_id: str) -> str:
        """The label value for one request of ``tenant_id`` (``""``: no tenant), counting it."""
        if not tenant_id:
            return ""
        counts = self._counts
        if tenant_id in counts or len(counts) < 16 * max(self.limit, 1):  # bounded memory
            counts[tenant_id] = counts.get(tenant_id, 0) + 1
        if self._clock() >= self._next:
            self._rotate()
        if tenant_id in self._labelled:
            return tenant_id
        if len(self._labelled) < self.limit:
            self._labelled.add(tenant_id)
            return tenant_id
        return OTHER_TENANT

    def peek(self, tenant_id: str | None) -> str:
        """The label value of ``tenant_id`` without counting a request (events and other metrics)."""
        if not tenant_id:
            return ""
        if tenant_id in self._labelled:
            return tenant_id
        if len(self._labelled) < self.limit:
            self._labelled.add(tenant_id)
            return tenant_id
        return OTHER_TENANT

    def _rotate(self) -> None:
        busiest = sorted(self._counts.items(), key=lambda item: item[1], reverse=True)[: self.limit]
        self._labelled = {tenant for tenant, _ in busiest}
        self._counts = {}
        self._next = self._clock() + self.refresh_seconds


@final
class _Refresher:
    """An async gauge update run at scrape time, at most once per ``ttl`` seconds (``invalidate`` forces it)."""

    def __init__(self, name: str, update: Callable[[], Awaitable[None]], ttl: float) -> None:
        self.name = name
        self.update = update
        self.ttl = ttl
        self.due = 0.0

    async def run(self, now: float, timeout: float) -> None:
        if now < self.due:
            return
        self.due = now + self.ttl
        try:
            async with asyncio.timeout(timeout):
                await self.update()
        except Exception as exc:  # a scrape must not fail because one source is down: keep the last value
            log.warning("metric source %s failed: %s: %s", self.name, type(exc).__name__, exc)


@final
class _Counts(Collector):
    """Counters kept as plain integers by their owners, read only when scraped."""

    def __init__(self) -> None:
        self.sources: dict[str, tuple[str, Callable[[], float]]] = {}

    def collect(self) -> Iterator[Metric]:
        for name, (documentation, read) in self.sources.items():
            family = CounterMetricFamily(name, documentation)
            family.add_metric([], read())
            yield family


@final
class _Timings(Collector):
    """A labelled histogram for the statement path: a bisect and two additions per observation.

    prometheus_client's ``Histogram`` takes a lock per observation, which is most of what timing a
    statement costs; every statement runs on the event loop's thread (async engines run their
    sync events in the loop's greenlet), so plain integers suffice.
    """

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...], buckets: tuple[float, ...]) -> None:
        self.name = name
        self.documentation = documentation
        self.label_names = labels
        self.buckets = buckets
        self.series: dict[tuple[str, ...], _Series] = {}

    def labels(self, *values: str) -> _Series:
        series = self.series.get(values)
        if series is None:
            series = self.series[values] = _Series(self.buckets)
        return series

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.label_names)
        for values, series in self.series.items():
            cumulative, running = [], 0
            for bound, count in zip((*self.buckets, float("inf")), series.counts, strict=True):
                running += count
                cumulative.append(("+Inf" if bound == float("inf") else repr(bound), running))
            family.add_metric(list(values), cumulative, series.total)
        yield family


@final
class _Series:
    __slots__ = ("buckets", "counts", "total")

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.buckets, seconds)] += 1
        self.total += seconds


@final
class Metrics:
    """The host's metrics and their registry.

    Args:
        enabled: ``False`` records nothing (``metrics.enabled = false``: no cost on any path).
        tenant_label_limit: tenants labelled by id (see :class:`TenantLabels`).
        tenant_label_refresh_seconds: how often the labelled tenants are chosen again.
        refresh_seconds: how long values that need IO are cached between scrapes.
    """

    def __init__(
        self,
        *,
        enabled: bool = True,
        tenant_label_limit: int = 100,
        tenant_label_refresh_seconds: float = 300.0,
        refresh_seconds: float = 15.0,
    ) -> None:
        self.enabled = enabled
        self.registry = CollectorRegistry(auto_describe=True)
        self.tenants = TenantLabels(tenant_label_limit, refresh_seconds=tenant_label_refresh_seconds)
        self.refresh_seconds = refresh_seconds
        r = self.registry
        # -- the seed's six
        self.http_requests = Counter(
            "http_requests_total",
            "HTTP requests by the status the client got",
            ["method", "route", "status", "tenant_id"],
            registry=r,
        )
        self.http_duration = Histogram(
            "http_request_duration_seconds", "HTTP request latency", ["method", "route", "status"], registry=r
        )
        self.db_duration = _Timings(
            "db_query_duration_seconds",
            "SQL statement latency, by operation and first table",
            ("operation", "table"),
            _SQL_LATENCY_BUCKETS,
        )
        r.register(self.db_duration)
        self.events_published = Counter(
            "events_published_total", "Events the broker accepted", ["event_type", "tenant_id"], registry=r
        )
        self.active_tenants = Gauge("active_tenants", "Tenants in status active", registry=r)
        self.active_plugins = Gauge("active_plugins", "Plugins loaded by this host", registry=r)
        # -- operators'
        self.outbox_lag = Gauge(
            "outbox_oldest_unsent_age_seconds", "Age of the oldest committed outbox row not yet published", registry=r
        )
        self.dlq_size = Gauge("dlq_size", "Dead letters waiting for replay or dismissal", ["plugin"], registry=r)
        self.consumer_lag = Gauge(
            "events_consumer_lag", "Records on assigned partitions not yet committed (Kafka)", ["plugin"], registry=r
        )
        self.fleet_total = Gauge("fleet_migration_tenants_total", "Tenants in the current fleet migration", registry=r)
        self.fleet_done = Gauge("fleet_migration_tenants_done", "Tenants migrated so far in that run", registry=r)
        self.fleet_failed = Gauge("fleet_migration_tenants_failed", "Tenants failed so far in that run", registry=r)
        #: decision: allowed, limited, error_open (backend down, admitted), error_closed (refused with 503).
        self.rate_limit_decisions = Counter(
            "rate_limit_decisions_total", "Rate limiter decisions", ["decision"], registry=r
        )
        self.rate_limit_backend_errors = Counter(
            "rate_limit_backend_errors_total", "Rate limiter backend failures", ["backend"], registry=r
        )
        self.plugin_breaker_state = Gauge(
            "plugin_breaker_state",
            "A remote plugin's circuit breaker: 0 closed, 1 half-open, 2 open",
            ["plugin"],
            registry=r,
        )
        self._counts = _Counts()
        r.register(self._counts)
        self._refreshers: dict[str, _Refresher] = {}
        self._request_children: dict[tuple[str, str, int, str], tuple[Any, Any]] = {}
        self._statements: dict[str, _Series] = {}
        self._tables: set[str] = set()

    # ------------------------------------------------------------- requests

    def observe_request(self, method: str, route: str, status: int, seconds: float, tenant_id: str) -> None:
        """Count one request and its latency; ``tenant_id`` is folded by the cardinality guard."""
        if not self.enabled:
            return
        key = (method, route, status, self.tenants.label(tenant_id))
        children = self._request_children.get(key)
        if children is None:
            if len(self._request_children) > 50_000:  # bound the cache, never the series
                self._request_children.clear()
            status_text = str(status)
            children = self._request_children[key] = (
                self.http_requests.labels(method, route, status_text, key[3]),
                self.http_duration.labels(method, route, status_text),
            )
        children[0].inc()
        children[1].observe(seconds)

    # --------------------------------------------------------------- events

    def count_published(self, events: Iterable[Any]) -> None:
        """Count events the bus accepted (objects with ``type`` and ``tenantid``); global events too."""
        if not self.enabled:
            return
        for event in events:
            self.events_published.labels(event.type, self.tenants.peek(event.tenantid)).inc()

    # ------------------------------------------------------------- database

    def instrument_engine(self, engine: Any) -> None:
        """Time every statement of a SQLAlchemy (sync) ``Engine`` into ``db_query_duration_seconds``."""
        if not self.enabled:
            return
        from sqlalchemy import event

        clock = time.perf_counter
        statements = self._statements

        # The start time rides on the statement's execution context: one attribute, no dict, and
        # a failed statement's context is simply dropped (failures are not timed).
        def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
            if context is not None:
                context._plexica_started = clock()

        def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
            started = getattr(context, "_plexica_started", None)
            if started is None:
                return
            child = statements.get(statement)
            if child is None:
                child = self._statement_child(statement)
            child.observe(clock() - started)

        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)

    def _statement_child(self, statement: str) -> _Series:
        operation, table = statement_labels(statement)
        if table and table not in self._tables:
            if len(self._tables) >= MAX_TABLES:
                table = OTHER_TABLE
            else:
                self._tables.add(table)
        if len(self._statements) >= _MAX_STATEMENTS:
            self._statements.clear()
        child = self._statements[statement] = self.db_duration.labels(operation, table)
        return child

    # ------------------------------------------------------ fleet migration

    def fleet_planned(self, pending: int, _up_to_date: int = 0) -> None:
        """A fleet migration run starts with ``pending`` tenants to migrate (``FleetMigrator.run(on_plan=)``)."""
        self.fleet_total.set(pending)
        self.fleet_done.set(0)
        self.fleet_failed.set(0)

    def fleet_result(self, result: Any) -> None:
        """One tenant of the run finished (``FleetMigrator.run(on_result=)``): migrated, failed or skipped."""
        outcome = getattr(result, "outcome", None)
        if outcome == "failed":
            self.fleet_failed.inc()
        elif outcome in ("migrated", "up-to-date"):  # "skipped": the run stopped before it
            self.fleet_done.inc()

    # ------------------------------------------------------------- scraping

    def count_from(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """Expose a counter its owner keeps as a plain number (read at scrape time; ``name`` ends in ``_total``)."""
        self._counts.sources[name] = (documentation, read)

    def refresh_with(self, name: str, update: Callable[[], Awaitable[None]], *, ttl: float | None = None) -> None:
        """Run ``update`` (which sets gauges) before a scrape, at most every ``ttl`` seconds."""
        self._refreshers[name] = _Refresher(name, update, self.refresh_seconds if ttl is None else ttl)

    def invalidate(self, name: str) -> None:
        """Make the next scrape run the ``name`` refresher, whatever its cache (a change happened)."""
        refresher = self._refreshers.get(name)
        if refresher is not None:
            refresher.due = 0.0

    async def refresh(self, timeout: float = 5.0) -> None:
        """Run the due refreshers concurrently, each bounded by ``timeout`` (a failing one keeps its value)."""
        now = time.monotonic()
        due = [refresher.run(now, timeout) for refresher in self._refreshers.values() if now >= refresher.due]
        if due:
            await asyncio.gather(*due)

    def render(self) -> bytes:
        """The text exposition of every metric (call :meth:`refresh` first for the IO-backed gauges)."""
        return generate_latest(self.registry)
