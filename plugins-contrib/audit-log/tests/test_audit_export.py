"""The JSON-lines export: every matching entry, oldest first, one object a line, streamed."""

from __future__ import annotations

import json

import pytest
from audit_support import entries, publish_probe, wait_for_subjects
from plexica_plugin_audit_log import routes

from plexica_sdk.testing import ProvisionedTenant, RunningHost

pytestmark = pytest.mark.anyio


async def test_export_streams_every_entry_oldest_first_as_json_lines(
    plexica_host: RunningHost, tenant: ProvisionedTenant
) -> None:
    made = [await publish_probe(plexica_host, tenant, "ann", n=n) for n in range(3)]
    await wait_for_subjects(plexica_host, tenant, made)
    listed = (await entries(plexica_host, tenant, limit="500"))["items"]

    async with plexica_host.client.stream(
        "GET", plexica_host.url("/export"), headers=tenant.headers("aud", ["auditor"])
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        assert "attachment" in response.headers["content-disposition"]
        assert "content-length" not in response.headers  # streamed, not buffered
        raw = b"".join([chunk async for chunk in response.aiter_bytes()])

    lines = raw.decode().splitlines()
    exported = [json.loads(line) for line in lines]
    assert raw.endswith(b"\n") and all(line.startswith("{") for line in lines)
    assert exported == list(reversed(listed))
    assert sorted(e["data"]["n"] for e in exported if e["type"] == "probe.thing.happened") == [0, 1, 2]


async def test_export_applies_the_filters(plexica_host: RunningHost, tenant: ProvisionedTenant) -> None:
    ann = await publish_probe(plexica_host, tenant, "ann")
    bob = await publish_probe(plexica_host, tenant, "bob")
    await wait_for_subjects(plexica_host, tenant, [ann, bob])

    response = await plexica_host.client.get(
        plexica_host.url("/export"),
        params={"type": "probe.*", "actor": "ann"},
        headers=tenant.headers("aud", ["auditor"]),
    )

    assert [json.loads(line)["subject"] for line in response.text.splitlines()] == [ann["id"]]


async def test_export_of_more_than_one_batch_keeps_order_and_count(
    plexica_host: RunningHost, tenant: ProvisionedTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = [await publish_probe(plexica_host, tenant, n=n) for n in range(12)]
    await wait_for_subjects(plexica_host, tenant, made)
    monkeypatch.setattr(routes, "_EXPORT_BATCH", 5)  # several batches of what is there

    response = await plexica_host.client.get(
        plexica_host.url("/export"), params={"type": "probe.*"}, headers=tenant.headers(roles=["auditor"])
    )

    exported = [json.loads(line) for line in response.text.splitlines()]
    seqs = [e["seq"] for e in exported]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # across batches: in order, none twice
    assert sorted(e["data"]["n"] for e in exported) == list(range(12))
