"""Helpers of the audit-log tests: read the trail over HTTP, wait for an entry to land."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import httpx2

from plexica_sdk.testing import ProvisionedTenant, RunningHost

AUDITOR = ("auditor",)


async def entries(
    host: RunningHost, tenant: ProvisionedTenant, roles: tuple[str, ...] = AUDITOR, **params: str
) -> dict[str, Any]:
    response = await host.client.get(host.url("/entries"), params=params, headers=tenant.headers("aud", roles))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def wait_for_entry(
    host: RunningHost, tenant: ProvisionedTenant, where: Callable[[dict[str, Any]], bool], **params: str
) -> dict[str, Any]:
    """The first entry matching ``where``, once the (asynchronous) delivery has recorded it."""
    with anyio.fail_after(10):
        while True:
            for item in (await entries(host, tenant, limit="500", **params))["items"]:
                if where(item):
                    return item
            await anyio.sleep(0.05)


async def publish_probe(host: RunningHost, tenant: ProvisionedTenant, user: str = "ann", **data: Any) -> dict[str, Any]:
    response = await host.client.post(
        host.url("/things", plugin="probe"), json=data, headers=tenant.headers(user, ["member"])
    )
    assert response.status_code == 201, response.text
    thing: dict[str, Any] = response.json()
    return thing


def assert_problem(response: httpx2.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


async def wait_for_subjects(host: RunningHost, tenant: ProvisionedTenant, things: list[dict[str, Any]]) -> None:
    """Wait until every one of ``things`` is in the trail (deliveries of different subjects may interleave)."""
    for thing in things:
        await wait_for_entry(host, tenant, lambda e, wanted=thing["id"]: e["subject"] == wanted)
