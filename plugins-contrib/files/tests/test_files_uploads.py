"""Upload and download through presigned URLs, limits, listing, and the uploaded event."""

from __future__ import annotations

import pytest
from files_support import Workspace, assert_problem, get_bytes, make_workspace, put_bytes, upload

from plexica_sdk.testing import ProvisionedTenant, RunningHost

pytestmark = pytest.mark.anyio


@pytest.fixture
async def ws(plexica_host: RunningHost, tenant: ProvisionedTenant) -> Workspace:
    return await make_workspace(plexica_host, tenant, {"mia": "member", "vic": "viewer", "ada": "admin"})


async def test_presigned_upload_then_download_roundtrip(plexica_host: RunningHost, ws: Workspace) -> None:
    data = b"quarterly plan\n" * 100

    done = await upload(ws, "mia", data, name="plan.txt")

    assert done["status"] == "ready" and done["owner_id"] == "mia" and done["size"] == len(data)
    event = await plexica_host.wait_for_event("files.file.uploaded", tenant=ws.tenant)
    assert event.data == {
        "id": done["id"],
        "workspace_id": ws.id,
        "owner_id": "mia",
        "name": "plan.txt",
        "size": len(data),
        "content_type": "text/plain",
    }
    listed = (await ws.call("GET", "/files", "vic")).json()["items"]
    assert [f["id"] for f in listed] == [done["id"]]
    got = (await ws.call("GET", f"/files/{done['id']}", "vic")).json()
    downloaded = await get_bytes(plexica_host, got["download_url"])
    assert downloaded.status_code == 200 and downloaded.content == data
    assert downloaded.headers["content-type"].startswith("text/plain")
    # The object is in the tenant's confined storage, under the plugin's namespace and the workspace.
    assert [o.key for o in await plexica_host.platform.plugin_objects("files", ws.tenant.context).list()] == [
        f"files/{ws.id}/{done['id']}"
    ]


async def test_a_pending_file_is_not_listed_and_completing_it_early_is_409(ws: Workspace) -> None:
    created = await ws.call("POST", "/files", "mia", json={"name": "a.txt", "size": 3, "content_type": "text/plain"})
    file = created.json()

    assert (
        file["status"] == "pending"
        and "download_url" not in (await ws.call("GET", f"/files/{file['id']}", "mia")).json()
    )
    assert (await ws.call("GET", "/files", "mia")).json()["items"] == []
    assert_problem(await ws.call("POST", f"/files/{file['id']}/complete", "mia"), 409)


async def test_completing_twice_publishes_once(plexica_host: RunningHost, ws: Workspace) -> None:
    done = await upload(ws, "mia", b"abc")
    again = await ws.call("POST", f"/files/{done['id']}/complete", "mia")

    assert again.status_code == 200 and again.json()["status"] == "ready"
    await plexica_host.wait_for_event("files.file.uploaded", tenant=ws.tenant)
    assert len([e for e in plexica_host.events.of("files.file.uploaded") if e.subject == done["id"]]) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "big.txt", "size": 26 * 1024**2, "content_type": "text/plain"}, "size"),
        ({"name": "run.exe", "size": 10, "content_type": "application/x-msdownload"}, "content_type"),
        ({"name": "", "size": 1, "content_type": "text/plain"}, None),
        ({"name": "a\nb", "size": 1, "content_type": "text/plain"}, None),
        ({"name": "a.txt", "size": -1, "content_type": "text/plain"}, None),
    ],
    ids=["over-default-size", "refused-type", "empty-name", "control-char", "negative-size"],
)
async def test_declared_limits_are_422_problems(ws: Workspace, body: dict[str, object], field: str | None) -> None:
    assert_problem(await ws.call("POST", "/files", "mia", json=body), 422, field)


async def test_the_tenant_config_sets_the_limits(plexica_host: RunningHost, ws: Workspace) -> None:
    await plexica_host.platform.plugin_config.set(
        ws.tenant.slug, "files", {"max_file_bytes": 10, "allowed_content_types": ["image/*"]}
    )
    assert_problem(
        await ws.call("POST", "/files", "mia", json={"name": "a.png", "size": 11, "content_type": "image/png"}),
        422,
        "size",
    )
    assert_problem(
        await ws.call("POST", "/files", "mia", json={"name": "a.txt", "size": 1, "content_type": "text/plain"}),
        422,
        "content_type",
    )
    done = await upload(ws, "mia", b"\x89PNG....", name="a.png", content_type="image/png")
    assert done["status"] == "ready"


async def test_an_upload_that_is_not_what_was_declared_is_refused_and_removed(
    plexica_host: RunningHost, ws: Workspace
) -> None:
    created = (
        await ws.call("POST", "/files", "mia", json={"name": "a.txt", "size": 5, "content_type": "text/plain"})
    ).json()
    stored = await put_bytes(plexica_host, created["upload_url"], b"123456", created["upload_headers"])
    assert stored.status_code in (200, 201), stored.text

    completed = await ws.call("POST", f"/files/{created['id']}/complete", "mia")

    if created["upload_url"].startswith("/"):
        # The host served the PUT: its hook refused the object at once, so there is nothing to complete.
        assert_problem(completed, 409)
    else:
        assert_problem(completed, 422, "size")
    assert (await ws.call("GET", f"/files/{created['id']}", "mia")).json()["status"] == "pending"
    assert await plexica_host.platform.plugin_objects("files", ws.tenant.context).list() == []


async def test_every_route_needs_a_workspace(plexica_host: RunningHost, ws: Workspace) -> None:
    response = await plexica_host.client.get(plexica_host.url("/files"), headers=ws.tenant.headers("mia"))
    assert_problem(response, 422, "X-Workspace-ID")


async def test_a_file_of_another_workspace_is_404(plexica_host: RunningHost, ws: Workspace) -> None:
    done = await upload(ws, "mia", b"abc")
    other = await make_workspace(plexica_host, ws.tenant, {"mia": "admin"}, admin="zed")

    assert_problem(await other.call("GET", f"/files/{done['id']}", "mia"), 404)
    assert_problem(await other.call("DELETE", f"/files/{done['id']}", "mia"), 404)
    assert (await other.call("GET", "/files", "mia")).json()["items"] == []
