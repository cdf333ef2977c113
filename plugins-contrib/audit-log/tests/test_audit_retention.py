"""Retention: entries older than ``retention_days`` go, on demand and by themselves; newer ones stay."""

from __future__ import annotations

import datetime as dt

import anyio
import pytest
from audit_support import assert_problem, entries, publish_probe, wait_for_entry
from plexica_plugin_audit_log import repository

from plexica_sdk import Event, context
from plexica_sdk.testing import ProvisionedTenant, RunningHost

pytestmark = pytest.mark.anyio


async def backdate(host: RunningHost, tenant: ProvisionedTenant, days: int) -> str:
    """Append an entry whose event occurred ``days`` ago (as an event replayed from an old backlog)."""
    event = Event(
        type="probe.thing.happened",
        source="/plugins/probe",
        data={"old": True},
        tenantid=tenant.id,
        time=dt.datetime.now(dt.UTC) - dt.timedelta(days=days),
    )
    with context.use(tenant.context):
        audit = host.platform.host_for("audit-log", tenant.context)
        async with audit.session() as session:
            await repository.append(session, event)
    return event.id


async def ids(host: RunningHost, tenant: ProvisionedTenant) -> set[str]:
    return {e["id"] for e in (await entries(host, tenant, limit="500"))["items"]}


async def test_purge_route_deletes_only_what_is_older_than_the_retention(
    plexica_host: RunningHost, tenant: ProvisionedTenant
) -> None:
    # Set up under the default retention (365 days, which keeps both), then lower it and purge at once.
    fresh = await publish_probe(plexica_host, tenant)
    await wait_for_entry(plexica_host, tenant, lambda e: e["subject"] == fresh["id"])
    old = await backdate(plexica_host, tenant, 40)
    recent = await backdate(plexica_host, tenant, 20)
    await plexica_host.platform.plugin_config.set(tenant.slug, "audit-log", {"retention_days": 30})

    response = await plexica_host.client.post(
        plexica_host.url("/purge"), headers=tenant.headers(roles=["tenant_admin"])
    )

    assert response.status_code == 200, response.text
    assert response.json()["deleted"] >= 1
    left = await ids(plexica_host, tenant)
    assert old not in left and recent in left
    assert any(e["subject"] == fresh["id"] for e in (await entries(plexica_host, tenant))["items"])


async def test_purge_runs_by_itself_on_a_recorded_event_once_due(
    plexica_host: RunningHost, tenant: ProvisionedTenant
) -> None:
    await wait_for_entry(plexica_host, tenant, lambda e: e["type"] == "core.tenant.created")
    old = await backdate(plexica_host, tenant, 8)
    assert old in await ids(plexica_host, tenant)  # kept by the default retention of 365 days

    await plexica_host.platform.plugin_config.set(
        tenant.slug, "audit-log", {"retention_days": 7, "purge_interval_seconds": 1}
    )
    trigger = await publish_probe(plexica_host, tenant)
    await wait_for_entry(plexica_host, tenant, lambda e: e["subject"] == trigger["id"])

    with anyio.fail_after(5):
        while True:
            if old not in await ids(plexica_host, tenant):
                break
            await anyio.sleep(0.05)


async def test_purge_is_throttled_per_tenant(plexica_host: RunningHost, tenant: ProvisionedTenant) -> None:
    first = await publish_probe(plexica_host, tenant)  # its purge (or an earlier one) opens the hour
    await wait_for_entry(plexica_host, tenant, lambda e: e["subject"] == first["id"])
    old = await backdate(plexica_host, tenant, 8)
    await plexica_host.platform.plugin_config.set(tenant.slug, "audit-log", {"retention_days": 7})

    second = await publish_probe(plexica_host, tenant)
    await wait_for_entry(plexica_host, tenant, lambda e: e["subject"] == second["id"])

    assert old in await ids(plexica_host, tenant)


async def test_a_bad_retention_setting_is_refused(plexica_host: RunningHost, tenant: ProvisionedTenant) -> None:
    response = await plexica_host.client.put(
        "/api/core/v1/plugins/audit-log/config",
        json={"retention_days": 0},
        headers=tenant.headers(roles=["tenant_admin"]),
    )
    assert_problem(response, 422)
