"""Two tenants: what tenant A's events put in its trail is invisible to tenant B, anywhere.

The isolation kit calls one plugin's routes; A's writes are the probe plugin's (the audit log has
no write routes), so the kit's database, cache, object and event channels cover the audit table,
and the trail's own routes are checked for the same markers beside it.
"""

from __future__ import annotations

import json

import pytest
from audit_support import PROBE_EVENT, entries, wait_for_entry

from plexica_sdk.testing import CANARY, Call, IsolationKit, ProvisionedTenant, RunningHost

pytestmark = pytest.mark.anyio


async def test_tenant_a_trail_is_invisible_to_tenant_b(
    plexica_host: RunningHost, two_tenants: tuple[ProvisionedTenant, ProvisionedTenant]
) -> None:
    a, b = two_tenants
    kit = IsolationKit(plexica_host, a, b, plugin="probe")

    report = await kit.check(
        writes=[Call.post("/things", {"label": f"secret {CANARY}"})],
        reads=["/things/{id}"],
        expect_events=[PROBE_EVENT],
    )
    canary = report.canary
    await wait_for_entry(plexica_host, a, lambda e: canary in json.dumps(e))

    assert report.seen_in_a["database"] >= 1  # A's audit entry holds the canary
    assert report.scanned_in_b["database"] >= 1  # B's trail (its core events at least) was searched
    for params in ({}, {"type": "probe.*"}, {"actor": "alice"}):
        assert canary not in json.dumps(await entries(plexica_host, b, limit="500", **params))
    exported = await plexica_host.client.get(plexica_host.url("/export"), headers=b.headers(roles=["auditor"]))
    assert exported.status_code == 200 and canary not in exported.text
