"""Two tenants: nothing of tenant A's files is visible to tenant B, anywhere (the isolation kit)."""

from __future__ import annotations

import pytest
from files_support import make_workspace, put_bytes, workspace_client

from plexica_sdk.testing import CANARY, Call, IsolationKit, ProvisionedTenant, RunningHost

pytestmark = pytest.mark.anyio


async def test_files_of_tenant_a_are_invisible_to_tenant_b(
    plexica_host: RunningHost, two_tenants: tuple[ProvisionedTenant, ProvisionedTenant]
) -> None:
    a, b = two_tenants
    # alice creates (so administers) a workspace in each tenant; the kit's calls run in it.
    ws_a = await make_workspace(plexica_host, a, {}, admin="alice")
    ws_b = await make_workspace(plexica_host, b, {}, admin="alice")
    # A's object holds the canary too: registered through the kit, its bytes PUT afterwards.
    host = workspace_client(plexica_host, {a.slug: ws_a.id, b.slug: ws_b.id})
    async with host.client:
        kit = IsolationKit(host, a, b)
        report = await kit.check(
            writes=[Call.post("/files", {"name": f"secret {CANARY}.txt", "size": 64, "content_type": "text/plain"})],
            reads=["/files/{id}", "/files"],
        )
        assert report.seen_in_a["database"] >= 1
        created = (await ws_a.call("GET", "/files", "alice")).json()
        assert created["items"] == []  # still pending

        # Upload real bytes holding the canary and look again, now through the objects channel too.
        registered = await ws_a.call(
            "POST", "/files", "alice", json={"name": "b.txt", "size": len(report.canary), "content_type": "text/plain"}
        )
        body = registered.json()
        stored = await put_bytes(host, body["upload_url"], report.canary.encode(), body["upload_headers"])
        assert stored.status_code in (200, 201)
        assert (await ws_a.call("POST", f"/files/{body['id']}/complete", "alice")).status_code == 200
        second = await kit.check(
            writes=[Call.post("/files", {"name": f"again {CANARY}", "size": 1, "content_type": "text/plain"})],
            reads=["/files/{id}"],
        )
    assert second.scanned_in_b["database"] >= 1
