"""Deliveries end to end: a real host, a real HTTPS receiver; signatures, retries, dead letters, disabling."""

from __future__ import annotations

import itertools
import json
from typing import Any

import anyio
import httpx2
import pytest
from plexica_plugin_webhooks import SIGNATURE_HEADER, InvalidSignatureError, verify_signature
from webhooks_testkit import PING_EVENT, Receiver

from plexica_sdk.testing import EventLog, ProvisionedTenant, RunningHost

pytestmark = pytest.mark.anyio

ADMIN = ["webhooks-admin"]


async def create_endpoint(
    host: RunningHost, client: httpx2.AsyncClient, tenant: ProvisionedTenant, url: str, types: list[str] | None = None
) -> dict[str, Any]:
    response = await client.post(
        host.url("/endpoints"),
        json={"url": url, "event_types": types or ["ping.*"], "description": "test"},
        headers=tenant.headers("ann", ADMIN),
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def ping(host: RunningHost, client: httpx2.AsyncClient, tenant: ProvisionedTenant, **data: Any) -> str:
    response = await client.post(host.url("/ping", plugin="ping"), json=data, headers=tenant.headers())
    assert response.status_code == 202, response.text
    event_id: str = response.json()["event_id"]
    return event_id


async def deliveries_of(
    host: RunningHost, client: httpx2.AsyncClient, tenant: ProvisionedTenant, endpoint: str, status: str | None = None
) -> list[dict[str, Any]]:
    query = f"?status={status}" if status else ""
    response = await client.get(
        host.url(f"/endpoints/{endpoint}/deliveries{query}"), headers=tenant.headers("ann", ADMIN)
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def settled(
    host: RunningHost, client: httpx2.AsyncClient, tenant: ProvisionedTenant, endpoint: str, status: str
) -> dict[str, Any]:
    """The endpoint's latest delivery once it reached ``status``."""
    with anyio.fail_after(10):
        while True:
            items = await deliveries_of(host, client, tenant, endpoint)
            if items and items[0]["status"] == status:
                return items[0]
            await anyio.sleep(0.05)


async def test_delivery_is_signed_with_the_secret_shown_once(
    plexica_host: RunningHost, client: httpx2.AsyncClient, tenant: ProvisionedTenant, receiver: Receiver
) -> None:
    url = receiver.script([200])
    endpoint = await create_endpoint(plexica_host, client, tenant, url)
    secret = endpoint["secret"]
    assert secret.startswith("whsec_")

    event_id = await ping(plexica_host, client, tenant, n=1)
    [got] = await receiver.wait_for(url, 1)

    verify_signature(secret, got.headers[SIGNATURE_HEADER.lower()], got.body)
    with pytest.raises(InvalidSignatureError):
        verify_signature(secret, got.headers[SIGNATURE_HEADER.lower()], got.body + b" ")
    with pytest.raises(InvalidSignatureError):
        verify_signature("whsec_other", got.headers[SIGNATURE_HEADER.lower()], got.body)
    body = json.loads(got.body)
    assert (body["id"], body["type"], body["data"], body["tenantid"]) == (event_id, PING_EVENT, {"n": 1}, tenant.id)
    assert got.headers["plexica-event-id"] == event_id and got.headers["host"] == url.split("/")[2]
    delivery = await settled(plexica_host, client, tenant, endpoint["id"], "succeeded")
    assert delivery["attempts"] == 1 and delivery["last_status_code"] == 200
    # Never shown again.
    shown = (
        await client.get(plexica_host.url(f"/endpoints/{endpoint['id']}"), headers=tenant.headers("ann", ADMIN))
    ).json()
    listed = (await client.get(plexica_host.url("/endpoints"), headers=tenant.headers("ann", ADMIN))).json()
    assert secret not in json.dumps(shown) and secret not in json.dumps(listed)


@pytest.mark.parametrize("failures", [[500, 503], ["slow"]], ids=["5xx-then-ok", "timeout-then-ok"])
async def test_5xx_and_timeouts_are_retried_until_success(
    plexica_host: RunningHost,
    client: httpx2.AsyncClient,
    tenant: ProvisionedTenant,
    receiver: Receiver,
    failures: list[int | str],
) -> None:
    url = receiver.script([*failures, 200])
    endpoint = await create_endpoint(plexica_host, client, tenant, url)
    event_id = await ping(plexica_host, client, tenant)

    got = await receiver.wait_for(url, len(failures) + 1)
    delivery = await settled(plexica_host, client, tenant, endpoint["id"], "succeeded")

    assert delivery["attempts"] == len(failures) + 1
    assert {r.headers["plexica-event-id"] for r in got} == {event_id}
    assert [r.headers["plexica-delivery-attempt"] for r in got] == [str(n) for n in range(1, len(got) + 1)]
    assert all(later.at - earlier.at >= 0.025 for earlier, later in itertools.pairwise(got))  # backed off


async def test_a_4xx_is_never_retried(
    plexica_host: RunningHost, client: httpx2.AsyncClient, tenant: ProvisionedTenant, receiver: Receiver
) -> None:
    url = receiver.script([400, 200])
    endpoint = await create_endpoint(plexica_host, client, tenant, url)
    await ping(plexica_host, client, tenant)

    delivery = await settled(plexica_host, client, tenant, endpoint["id"], "failed")
    await anyio.sleep(0.6)  # several backoff periods: a retry would have come by now

    assert len(receiver.received(url)) == 1
    assert (delivery["attempts"], delivery["last_status_code"], delivery["next_attempt_at"]) == (1, 400, None)


async def test_exhausted_delivery_is_dead_lettered_and_replayed(
    plexica_host: RunningHost, client: httpx2.AsyncClient, tenant: ProvisionedTenant, receiver: Receiver
) -> None:
    url = receiver.script([500, 500, 500, 200])  # max_attempts is 3 in these tests
    endpoint = await create_endpoint(plexica_host, client, tenant, url)
    event_id = await ping(plexica_host, client, tenant)

    dead = await settled(plexica_host, client, tenant, endpoint["id"], "dead")
    assert dead["attempts"] == 3 and dead["last_status_code"] == 500
    assert [d["id"] for d in await deliveries_of(plexica_host, client, tenant, endpoint["id"], "dead")] == [dead["id"]]

    replay = await client.post(
        plexica_host.url(f"/deliveries/{dead['id']}/replay"), headers=tenant.headers("ann", ADMIN)
    )
    assert replay.status_code == 202, replay.text
    again = await client.post(
        plexica_host.url(f"/deliveries/{dead['id']}/replay"), headers=tenant.headers("ann", ADMIN)
    )

    delivered = await settled(plexica_host, client, tenant, endpoint["id"], "succeeded")
    assert delivered["id"] == dead["id"] and delivered["attempts"] == 1
    assert [r.headers["plexica-event-id"] for r in receiver.received(url)] == [event_id] * 4
    assert again.status_code in (202, 409)  # 409 once it is no longer dead; never a second delivery row


async def test_endpoint_disabled_after_sustained_failure_with_an_event(
    plexica_host: RunningHost,
    client: httpx2.AsyncClient,
    tenant: ProvisionedTenant,
    receiver: Receiver,
    published_events: EventLog,
) -> None:
    url = receiver.script([410])
    endpoint = await create_endpoint(plexica_host, client, tenant, url)
    headers = tenant.headers("ann", ADMIN)

    for n in range(2):  # disable_after_failures is 2 in these tests
        await ping(plexica_host, client, tenant, n=n)
        await receiver.wait_for(url, n + 1)

    event = await plexica_host.wait_for_event("webhooks.endpoint.disabled", tenant=tenant, timeout=10)
    assert event.subject == endpoint["id"]
    assert event.data["url"] == url and event.data["consecutive_failures"] == 2
    shown = (await client.get(plexica_host.url(f"/endpoints/{endpoint['id']}"), headers=headers)).json()
    assert shown["enabled"] is False and "2 consecutive" in shown["disabled_reason"]

    await ping(plexica_host, client, tenant, n=3)  # not recorded for a disabled endpoint
    await anyio.sleep(0.5)
    assert len(receiver.received(url)) == 2
    assert len(await deliveries_of(plexica_host, client, tenant, endpoint["id"])) == 2

    enabled = await client.patch(
        plexica_host.url(f"/endpoints/{endpoint['id']}"), json={"enabled": True}, headers=headers
    )
    assert enabled.json()["enabled"] is True and enabled.json()["consecutive_failures"] == 0


async def test_rotated_secret_signs_with_both_during_the_grace_period(
    plexica_host: RunningHost, client: httpx2.AsyncClient, tenant: ProvisionedTenant, receiver: Receiver
) -> None:
    url = receiver.script([200])
    endpoint = await create_endpoint(plexica_host, client, tenant, url)
    rotated = await client.post(
        plexica_host.url(f"/endpoints/{endpoint['id']}/rotate-secret"), headers=tenant.headers("ann", ADMIN)
    )
    new = rotated.json()["secret"]
    assert rotated.status_code == 200 and new != endpoint["secret"]

    await ping(plexica_host, client, tenant)
    [got] = await receiver.wait_for(url, 1)

    header = got.headers[SIGNATURE_HEADER.lower()]
    verify_signature(new, header, got.body)
    verify_signature(endpoint["secret"], header, got.body)
    assert header.count("v1=") == 2


async def test_endpoints_of_one_tenant_get_only_its_events(
    plexica_host: RunningHost,
    client: httpx2.AsyncClient,
    two_tenants: tuple[ProvisionedTenant, ProvisionedTenant],
    receiver: Receiver,
) -> None:
    a, b = two_tenants
    url_a, url_b = receiver.script([200]), receiver.script([200])
    endpoint_a = await create_endpoint(plexica_host, client, a, url_a)
    await create_endpoint(plexica_host, client, b, url_b)

    in_b = await ping(plexica_host, client, b)
    in_a = await ping(plexica_host, client, a)
    [got_a], [got_b] = await receiver.wait_for(url_a, 1), await receiver.wait_for(url_b, 1)

    assert got_a.headers["plexica-event-id"] == in_a and got_b.headers["plexica-event-id"] == in_b
    from_b = await client.get(plexica_host.url(f"/endpoints/{endpoint_a['id']}"), headers=b.headers("bob", ADMIN))
    assert from_b.status_code == 404
    listed = (await client.get(plexica_host.url("/endpoints"), headers=b.headers("bob", ADMIN))).json()["items"]
    assert [e["url"] for e in listed] == [url_b]
