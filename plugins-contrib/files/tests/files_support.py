"""Helpers of the files tests: a workspace with people in it, uploads through the presigned URLs.

The kit has no notion of workspaces yet, so :func:`workspace_client` gives the isolation kit a
client that adds each tenant's ``X-Workspace-ID`` (found from the token's realm) to its calls.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import attrs
import httpx2

from plexica_sdk.testing import ProvisionedTenant, RunningHost

API = "/api/core/v1"


@attrs.define
class Workspace:
    """A workspace of ``tenant`` with members by role: ``owen`` created it (admin)."""

    host: RunningHost
    tenant: ProvisionedTenant
    id: str

    def headers(self, user: str) -> dict[str, str]:
        return {**self.tenant.headers(user, ["member"]), "X-Workspace-ID": self.id}

    async def call(self, method: str, path: str, user: str, **kwargs: Any) -> httpx2.Response:
        return await self.host.client.request(method, self.host.url(path), headers=self.headers(user), **kwargs)


async def make_workspace(
    host: RunningHost, tenant: ProvisionedTenant, members: dict[str, str], admin: str = "owen"
) -> Workspace:
    """A workspace created by ``admin`` with ``members`` (user → ``admin``/``member``/``viewer``)."""
    for user in (admin, *members):  # a user's first request creates their profile
        response = await host.client.get(f"{API}/me", headers=tenant.headers(user))
        assert response.status_code == 200, response.text
    created = await host.client.post(
        f"{API}/workspaces", json={"name": f"Plans {uuid.uuid4().hex[:8]}"}, headers=tenant.headers(admin)
    )
    assert created.status_code == 201, created.text
    ws = Workspace(host, tenant, created.json()["id"])
    for user, role in members.items():
        added = await host.client.post(
            f"{API}/workspaces/{ws.id}/members", json={"user_id": user, "role": role}, headers=tenant.headers(admin)
        )
        assert added.status_code == 201, added.text
    return ws


async def put_bytes(host: RunningHost, url: str, data: bytes, headers: dict[str, str]) -> httpx2.Response:
    """PUT to a presigned URL: the host's own (embedded store, app-relative) or the S3 server's."""
    if url.startswith("/"):
        return await host.client.put(url, content=data, headers=headers)
    async with httpx2.AsyncClient() as outside:
        return await outside.put(url, content=data, headers=headers)


async def get_bytes(host: RunningHost, url: str) -> httpx2.Response:
    if url.startswith("/"):
        return await host.client.get(url)
    async with httpx2.AsyncClient() as outside:
        return await outside.get(url)


async def upload(
    ws: Workspace, user: str, data: bytes, name: str = "a.txt", content_type: str = "text/plain"
) -> dict[str, Any]:
    """Register, PUT and complete a file; the completed file."""
    created = await ws.call(
        "POST", "/files", user, json={"name": name, "size": len(data), "content_type": content_type}
    )
    assert created.status_code == 201, created.text
    body = created.json()
    # S3 presigns its own absolute URLs; the embedded store's are the host's, app-relative.
    on_s3 = ws.host.platform.settings.storage.backend == "s3"
    assert body["upload_url"].startswith("http") is on_s3, body["upload_url"]
    stored = await put_bytes(ws.host, body["upload_url"], data, body["upload_headers"])
    assert stored.status_code in (200, 201), stored.text
    done = await ws.call("POST", f"/files/{body['id']}/complete", user)
    assert done.status_code == 200, done.text
    result: dict[str, Any] = done.json()
    return result


def assert_problem(response: httpx2.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    if field is not None:
        assert body["errors"][0]["field"] == field, body
    return body


def workspace_client(host: RunningHost, workspaces: dict[str, str]) -> RunningHost:
    """``host`` with a client that sends each tenant's workspace (slug → workspace id) on every call."""

    async def add_workspace(request: httpx2.Request) -> None:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token.count(".") == 2:
            payload = token.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            slug = str(claims.get("iss", "")).rsplit("tenant-", 1)[-1]
            if slug in workspaces:
                request.headers["X-Workspace-ID"] = workspaces[slug]

    client = httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=host.app),
        base_url="http://testserver",
        event_hooks={"request": [add_workspace]},
    )
    return attrs.evolve(host, client=client)
