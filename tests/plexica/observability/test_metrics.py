"""The metrics' own rules: SQL labels, the tenant-label guard, request counts, scrape-time refreshes."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from plexica.observability.metrics import MAX_TABLES, OTHER_TABLE, OTHER_TENANT, Metrics, TenantLabels, statement_labels

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("statement", "labels"),
    [
        ("SELECT core.tenants.id FROM core.tenants WHERE core.tenants.slug = $1", ("SELECT", "tenants")),
        ('select n.id from "tenant_acme".notes_notes AS n', ("SELECT", "notes_notes")),
        ("INSERT INTO outbox (event_id) VALUES (?)", ("INSERT", "outbox")),
        ("UPDATE tenant_acme.users SET name=? WHERE id=?", ("UPDATE", "users")),
        ("DELETE FROM core.outbox WHERE sent_at < $1", ("DELETE", "outbox")),
        ("WITH x AS (SELECT 1) SELECT * FROM roles JOIN x ON true", ("SELECT", "roles")),
        ("BEGIN IMMEDIATE", ("BEGIN", "")),
        ("SELECT 1", ("SELECT", "")),
        ("VACUUM", ("OTHER", "")),
    ],
)
def test_statement_labels(statement: str, labels: tuple[str, str]) -> None:
    assert statement_labels(statement) == labels


def test_tenant_labels_keep_the_top_n_and_fold_the_rest_into_other() -> None:
    now = [0.0]
    guard = TenantLabels(2, refresh_seconds=60.0, clock=lambda: now[0])
    assert [guard.label(t) for t in ("a", "b", "c", "a", "")] == ["a", "b", OTHER_TENANT, "a", ""]
    for _ in range(5):
        guard.label("c")  # c becomes the busiest tenant of this period
    now[0] = 61.0
    assert guard.label("c") == "c"  # the period ended: the labelled set is c and a (3 requests), not b
    assert guard.label("a") == "a"
    assert guard.label("b") == OTHER_TENANT
    assert TenantLabels(0).label("a") == OTHER_TENANT


def test_request_counters_equal_the_requests_per_label_set() -> None:
    metrics = Metrics(tenant_label_limit=1)
    for _ in range(3):
        metrics.observe_request("GET", "/api/x/{id}", 200, 0.01, "t1")
    for _ in range(2):
        metrics.observe_request("GET", "/api/x/{id}", 403, 0.01, "t2")  # beyond the limit: other
    value = metrics.registry.get_sample_value
    assert (
        value("http_requests_total", {"method": "GET", "route": "/api/x/{id}", "status": "200", "tenant_id": "t1"}) == 3
    )
    assert (
        value("http_requests_total", {"method": "GET", "route": "/api/x/{id}", "status": "403", "tenant_id": "other"})
        == 2
    )
    assert (
        value("http_requests_total", {"method": "GET", "route": "/api/x/{id}", "status": "403", "tenant_id": "t2"})
        is None
    )
    assert value("http_request_duration_seconds_count", {"method": "GET", "route": "/api/x/{id}", "status": "403"}) == 2


def test_table_labels_are_bounded() -> None:
    metrics = Metrics()
    child = None
    for index in range(MAX_TABLES + 5):
        child = metrics._statement_child(f"SELECT * FROM t{index}")  # noqa: S608 - a made-up statement
        child.observe(0.001)
    assert (
        metrics.registry.get_sample_value(
            "db_query_duration_seconds_count", {"operation": "SELECT", "table": OTHER_TABLE}
        )
        == 5
    )


async def test_refreshers_run_at_most_once_per_ttl_unless_invalidated() -> None:
    metrics = Metrics(refresh_seconds=3600.0)
    calls: list[int] = []

    async def update() -> None:
        calls.append(1)
        metrics.active_tenants.set(len(calls))

    async def broken() -> None:
        raise OSError("down")

    metrics.refresh_with("tenants", update)
    metrics.refresh_with("broken", broken)
    await metrics.refresh()
    await metrics.refresh()
    assert len(calls) == 1
    metrics.invalidate("tenants")
    await metrics.refresh()
    assert metrics.registry.get_sample_value("active_tenants") == 2
    count = [7]
    metrics.count_from("things_total", "Things", lambda: count[0])
    assert metrics.registry.get_sample_value("things_total") == 7


def test_disabled_metrics_record_nothing() -> None:
    metrics = Metrics(enabled=False)
    metrics.observe_request("GET", "/x", 200, 0.01, "t1")
    engine = sa.create_engine("sqlite://")
    metrics.instrument_engine(engine)
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    assert (
        metrics.registry.get_sample_value(
            "http_requests_total", {"method": "GET", "route": "/x", "status": "200", "tenant_id": "t1"}
        )
        is None
    )
    assert b"db_query_duration_seconds_count{" not in metrics.render()
