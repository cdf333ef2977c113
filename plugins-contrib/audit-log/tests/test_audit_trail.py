"""The trail: every core and plugin event lands once, in its own tenant, and is queryable."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from audit_support import PROBE_EVENT, assert_problem, entries, publish_probe, wait_for_entry, wait_for_subjects
from plexica_plugin_audit_log.models import entries as table
from plexica_plugin_audit_log.plugin import patterns, record

from plexica_sdk import context
from plexica_sdk.testing import ProvisionedTenant, RunningHost

pytestmark = pytest.mark.anyio


def test_patterns_cover_the_core_and_every_other_plugin() -> None:
    assert patterns(["core", "audit-log", "notes", "files"]) == ["core.*", "notes.*", "files.*"]


async def test_core_and_plugin_events_are_recorded_with_their_actor(
    plexica_host: RunningHost, tenant: ProvisionedTenant
) -> None:
    core = await wait_for_entry(plexica_host, tenant, lambda e: e["type"] == "core.tenant.created")
    thing = await publish_probe(plexica_host, tenant, "ann", label="first")

    found = await wait_for_entry(plexica_host, tenant, lambda e: e["subject"] == thing["id"])

    assert core["source"] and core["data"]["slug"] == tenant.slug
    assert found["type"] == PROBE_EVENT and found["actor"] == "ann" and found["data"]["label"] == "first"
    event = await plexica_host.wait_for_event(PROBE_EVENT, tenant=tenant)
    assert found["id"] == event.id and found["occurred_at"] == event.time.isoformat()


async def test_events_stay_in_their_tenant(
    plexica_host: RunningHost, two_tenants: tuple[ProvisionedTenant, ProvisionedTenant]
) -> None:
    a, b = two_tenants
    thing = await publish_probe(plexica_host, a)
    await wait_for_entry(plexica_host, a, lambda e: e["subject"] == thing["id"])
    await publish_probe(plexica_host, b)  # B's own event, delivered after A's in B's lane
    await wait_for_entry(plexica_host, b, lambda e: e["type"] == PROBE_EVENT)

    in_b = (await entries(plexica_host, b, limit="500"))["items"]
    assert thing["id"] not in [e["subject"] for e in in_b]
    assert {e["data"].get("slug") for e in in_b if e["type"] == "core.tenant.created"} == {b.slug}


async def test_filters_by_actor_type_and_time(plexica_host: RunningHost, tenant: ProvisionedTenant) -> None:
    await wait_for_entry(plexica_host, tenant, lambda e: e["type"] == "core.tenant.created")
    ann = await publish_probe(plexica_host, tenant, "ann")
    bob = await publish_probe(plexica_host, tenant, "bob")
    await wait_for_entry(plexica_host, tenant, lambda e: e["subject"] == bob["id"])

    by_ann = (await entries(plexica_host, tenant, actor="ann"))["items"]
    ann_probes = (await entries(plexica_host, tenant, actor="ann", type="probe.*"))["items"]
    probes = (await entries(plexica_host, tenant, type="probe.*"))["items"]
    core = (await entries(plexica_host, tenant, type="core.*"))["items"]
    exact = (await entries(plexica_host, tenant, type="core.tenant.created"))["items"]
    last = probes[0]["occurred_at"]
    since_last = (await entries(plexica_host, tenant, since=last))["items"]
    until_last = (await entries(plexica_host, tenant, until=last, type="probe.*"))["items"]

    assert by_ann and {e["actor"] for e in by_ann} == {"ann"}  # her probe, and the core's events of her
    assert [e["subject"] for e in ann_probes] == [ann["id"]]
    assert [e["subject"] for e in probes] == [bob["id"], ann["id"]]  # newest first
    assert core and all(e["type"].startswith("core.") for e in core)
    assert [e["type"] for e in exact] == ["core.tenant.created"]
    assert bob["id"] in [e["subject"] for e in since_last] and all(e["occurred_at"] >= last for e in since_last)
    assert [e["subject"] for e in until_last] == [ann["id"]]


async def test_cursor_pages_through_everything_once(plexica_host: RunningHost, tenant: ProvisionedTenant) -> None:
    made = [await publish_probe(plexica_host, tenant, label=str(n)) for n in range(7)]
    await wait_for_subjects(plexica_host, tenant, made)
    everything = (await entries(plexica_host, tenant, limit="500"))["items"]

    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        body = await entries(plexica_host, tenant, **params)
        seen.extend(e["seq"] for e in body["items"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break

    assert seen == [e["seq"] for e in everything] and len(set(seen)) == len(seen)
    assert pages == -(-len(everything) // 3)


@pytest.mark.parametrize(
    "params",
    [{"since": "yesterday"}, {"until": "2026-13-01"}, {"cursor": "abc"}, {"limit": "0"}, {"actor": "x" * 256}],
    ids=["since", "until", "cursor", "limit", "long-actor"],
)
async def test_bad_filters_are_422_problems(
    plexica_host: RunningHost, tenant: ProvisionedTenant, params: dict[str, str]
) -> None:
    response = await plexica_host.client.get(
        plexica_host.url("/entries"), params=params, headers=tenant.headers(roles=["auditor"])
    )
    assert_problem(response, 422)


async def test_a_redelivered_event_is_recorded_once(plexica_host: RunningHost, tenant: ProvisionedTenant) -> None:
    thing = await publish_probe(plexica_host, tenant)
    await wait_for_entry(plexica_host, tenant, lambda e: e["subject"] == thing["id"])
    event = await plexica_host.wait_for_event(PROBE_EVENT, tenant=tenant)

    with context.use(tenant.context):
        host = plexica_host.platform.host_for("audit-log", tenant.context)
        await record(event, host)  # what the bus does on a redelivery
        await record(event, host)

    same = [e for e in (await entries(plexica_host, tenant, limit="500"))["items"] if e["id"] == event.id]
    assert len(same) == 1


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_no_route_changes_the_trail(plexica_host: RunningHost, tenant: ProvisionedTenant, method: str) -> None:
    response = await plexica_host.client.request(
        method, plexica_host.url("/entries"), headers=tenant.headers(roles=["tenant_admin"])
    )
    assert response.status_code == 405


async def test_the_database_refuses_to_update_an_entry(plexica_host: RunningHost, tenant: ProvisionedTenant) -> None:
    await wait_for_entry(plexica_host, tenant, lambda e: e["type"] == "core.tenant.created")
    schema = tenant.info.schema
    tampered = sa.update(table).values(actor="mallory", occurred_at=dt.datetime.now(dt.UTC))
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        async with plexica_host.platform.db.tenant_connection(schema) as conn:
            await conn.execute(tampered)


async def test_postgres_refuses_delete_and_truncate_outside_a_purge(
    plexica_host: RunningHost, tenant: ProvisionedTenant
) -> None:
    if plexica_host.platform.db.dialect != "postgresql":
        pytest.skip("the DELETE/TRUNCATE trigger is PostgreSQL's; set TEST_DATABASE_URL")
    await wait_for_entry(plexica_host, tenant, lambda e: e["type"] == "core.tenant.created")
    schema = tenant.info.schema
    for statement in (sa.delete(table), sa.text(f'TRUNCATE "{schema}".audit_entries')):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            async with plexica_host.platform.db.tenant_connection(schema) as conn:
                await conn.execute(statement)
    assert (await entries(plexica_host, tenant))["items"]
