"""The notes routes over HTTP, against a real host: create, list, read, change, delete, bad input."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from plexica_sdk.testing import ProvisionedTenant, RunningHost, assert_problem

pytestmark = pytest.mark.anyio

EDITOR = ("member", "notes-editor")


async def test_created_note_is_listed_read_changed_and_deleted(
    plexica_host: RunningHost, client: httpx2.AsyncClient, tenant: ProvisionedTenant
) -> None:
    headers = tenant.headers("ann", EDITOR)
    created = await client.post(plexica_host.url("/notes"), json={"title": "plan", "body": "b"}, headers=headers)
    assert created.status_code == 201, created.text
    note = created.json()
    assert note["author_id"] == "ann" and note["title"] == "plan"

    listed = (await client.get(plexica_host.url("/notes"), headers=headers)).json()["items"]
    assert note["id"] in [item["id"] for item in listed]

    url = plexica_host.url(f"/notes/{note['id']}")
    changed = await client.put(url, json={"title": "plan v2", "body": "c"}, headers=headers)
    assert changed.status_code == 200 and changed.json()["title"] == "plan v2"
    assert (await client.get(url, headers=headers)).json()["body"] == "c"

    assert (await client.delete(url, headers=headers)).status_code == 204
    assert_problem(await client.get(url, headers=headers), 404)


@pytest.mark.parametrize(
    "body",
    [{"title": ""}, {"title": "x" * 201}, {"title": 3}, {"title": "ok", "body": 5}, ["not", "an", "object"]],
    ids=["empty-title", "long-title", "number-title", "number-body", "array"],
)
async def test_invalid_note_is_a_422_problem(
    plexica_host: RunningHost, client: httpx2.AsyncClient, tenant: ProvisionedTenant, body: Any
) -> None:
    response = await client.post(plexica_host.url("/notes"), json=body, headers=tenant.headers(roles=EDITOR))
    problem = assert_problem(response, 422)
    assert problem["errors"], problem  # each names what is wrong (the field naming is json_body's contract)


async def test_changing_a_missing_note_is_404(
    plexica_host: RunningHost, client: httpx2.AsyncClient, tenant: ProvisionedTenant
) -> None:
    response = await client.put(
        plexica_host.url("/notes/no-such-note"), json={"title": "t"}, headers=tenant.headers(roles=EDITOR)
    )
    assert_problem(response, 404)


async def test_list_is_newest_first_and_honours_limit(
    plexica_host: RunningHost, client: httpx2.AsyncClient, tenant: ProvisionedTenant
) -> None:
    headers = tenant.headers(roles=EDITOR)
    for title in ("one", "two", "three"):
        assert (
            await client.post(plexica_host.url("/notes"), json={"title": title}, headers=headers)
        ).status_code == 201
    items = (await client.get(plexica_host.url("/notes?limit=2"), headers=headers)).json()["items"]
    assert [item["title"] for item in items] == ["three", "two"]
