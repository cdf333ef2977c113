"""The notes events: what creating a note publishes, and the welcome note the subscription writes."""

from __future__ import annotations

from typing import Any

import anyio
import httpx2
import pytest
from plexica_plugin_notes.plugin import WELCOME_TITLE

from plexica_sdk.testing import EventLog, ProvisionedTenant, RunningHost

pytestmark = pytest.mark.anyio


async def test_creating_a_note_publishes_note_created_in_its_tenant(
    plexica_host: RunningHost,
    client: httpx2.AsyncClient,
    two_tenants: tuple[ProvisionedTenant, ProvisionedTenant],
    published_events: EventLog,
) -> None:
    a, b = two_tenants
    response = await client.post(
        plexica_host.url("/notes"), json={"title": "hello"}, headers=a.headers("ann", ["notes-editor"])
    )
    note = response.json()

    event = await plexica_host.wait_for_event("notes.note.created", tenant=a, where=lambda e: e.subject == note["id"])

    assert event.data == {"id": note["id"], "title": "hello", "author_id": "ann"}
    assert event.tenantid == a.id and event.userid == "ann" and event.source.endswith("notes")
    assert [e for e in published_events.delivered_in(b.slug) if e.type == "notes.note.created"] == []


async def test_note_rolled_back_publishes_nothing(
    plexica_host: RunningHost, client: httpx2.AsyncClient, tenant: ProvisionedTenant, published_events: EventLog
) -> None:
    # Room for the welcome note and one more: the next create fails before the outbox write commits.
    await notes_of(plexica_host, client, tenant)  # the welcome note is there
    await plexica_host.platform.plugin_config.set(tenant.slug, "notes", {"max_notes": 2})
    headers = tenant.headers(roles=["notes-editor"])
    assert (await client.post(plexica_host.url("/notes"), json={"title": "one"}, headers=headers)).status_code == 201
    await plexica_host.wait_for_event("notes.note.created", tenant=tenant)
    before = len(published_events.of("notes.note.created"))

    refused = await client.post(plexica_host.url("/notes"), json={"title": "two"}, headers=headers)

    assert refused.status_code == 409
    with pytest.raises(TimeoutError):
        await published_events.wait_for(
            "notes.note.created", timeout=0.5, after=len(published_events), tenant=tenant.slug
        )
    assert len(published_events.of("notes.note.created")) == before


async def test_new_tenant_gets_a_welcome_note_once(
    plexica_host: RunningHost, client: httpx2.AsyncClient, tenant: ProvisionedTenant
) -> None:
    await notes_of(plexica_host, client, tenant)
    await anyio.sleep(0.2)  # a redelivery, were there one, would add a second note by now
    items = (await client.get(plexica_host.url("/notes"), headers=tenant.headers())).json()["items"]
    assert [item["title"] for item in items] == [WELCOME_TITLE]
    assert items[0]["author_id"] == "system"


async def notes_of(host: RunningHost, client: httpx2.AsyncClient, tenant: ProvisionedTenant) -> list[dict[str, Any]]:
    """The tenant's notes once there are any: the welcome note lands in its own delivery lane."""
    await host.wait_for_event("core.tenant.created", tenant=tenant)
    with anyio.fail_after(5):
        while True:
            items: list[dict[str, Any]] = (await client.get(host.url("/notes"), headers=tenant.headers())).json()[
                "items"
            ]
            if items:
                return items
            await anyio.sleep(0.02)
