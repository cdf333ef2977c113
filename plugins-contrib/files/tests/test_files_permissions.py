"""Who may do what: workspace roles, and "the owner or a workspace admin may delete"."""

from __future__ import annotations

import pytest
from files_support import Workspace, assert_problem, make_workspace, upload
from plexica_plugin_files import FilesPlugin

from plexica_sdk.testing import PolicyCase, PolicySubject, ProvisionedTenant, RunningHost, policy_table

pytestmark = pytest.mark.anyio

READ, WRITE, DELETE = "files:file:read", "files:file:write", "files:file:delete"
viewer = PolicySubject(id="vic", roles=("member",), workspace_roles={"ws-1": "viewer"}, workspace_id="ws-1")
member = PolicySubject(id="mia", roles=("member",), workspace_roles={"ws-1": "member"}, workspace_id="ws-1")
admin = PolicySubject(id="ada", roles=("member",), workspace_roles={"ws-1": "admin"}, workspace_id="ws-1")
outsider = PolicySubject(id="olga", roles=("member",))

test_roles_and_policy = policy_table(
    FilesPlugin(),
    [
        PolicyCase(viewer, READ, expected=True, id="viewer-reads"),
        PolicyCase(viewer, WRITE, expected=False, id="viewer-cannot-upload"),
        PolicyCase(member, WRITE, expected=True, id="member-uploads"),
        PolicyCase(member, DELETE, {"owner_id": "mia"}, expected=True, id="owner-deletes"),
        PolicyCase(member, DELETE, {"owner_id": "bob"}, expected=False, id="member-cannot-delete-others"),
        PolicyCase(admin, DELETE, {"owner_id": "bob"}, expected=True, id="admin-deletes-any"),
        PolicyCase(outsider, READ, expected=False, id="outsider-cannot-read"),
    ],
)


@pytest.fixture
async def ws(plexica_host: RunningHost, tenant: ProvisionedTenant) -> Workspace:
    await make_workspace(plexica_host, tenant, {}, admin="olga")  # olga exists, but not in this workspace
    return await make_workspace(
        plexica_host, tenant, {"mia": "member", "max": "member", "vic": "viewer", "ada": "admin"}
    )


async def test_viewer_cannot_upload_and_outsider_cannot_list(ws: Workspace) -> None:
    body = {"name": "a.txt", "size": 1, "content_type": "text/plain"}
    assert_problem(await ws.call("POST", "/files", "vic", json=body), 403)
    # A workspace the caller is not in does not exist for them: the host answers 404 before the route.
    assert_problem(await ws.call("GET", "/files", "olga"), 404)
    assert (await ws.call("GET", "/files", "vic")).status_code == 200


async def test_only_the_uploader_completes(ws: Workspace) -> None:
    created = (
        await ws.call("POST", "/files", "mia", json={"name": "a.txt", "size": 1, "content_type": "text/plain"})
    ).json()
    assert_problem(await ws.call("POST", f"/files/{created['id']}/complete", "max"), 403)


async def test_the_owner_deletes_their_file(plexica_host: RunningHost, ws: Workspace) -> None:
    done = await upload(ws, "mia", b"mine")

    assert (await ws.call("DELETE", f"/files/{done['id']}", "mia")).status_code == 204

    assert_problem(await ws.call("GET", f"/files/{done['id']}", "mia"), 404)
    event = await plexica_host.wait_for_event("files.file.deleted", tenant=ws.tenant)
    assert event.data["id"] == done["id"] and event.data["deleted_by"] == "mia" and event.data["owner_id"] == "mia"
    assert await plexica_host.platform.plugin_objects("files", ws.tenant.context).list() == []


async def test_another_member_may_not_delete_it(ws: Workspace) -> None:
    done = await upload(ws, "mia", b"mine")

    assert_problem(await ws.call("DELETE", f"/files/{done['id']}", "max"), 403)
    assert_problem(await ws.call("DELETE", f"/files/{done['id']}", "vic"), 403)
    assert_problem(await ws.call("DELETE", f"/files/{done['id']}", "olga"), 404)
    assert (await ws.call("GET", f"/files/{done['id']}", "mia")).json()["status"] == "ready"


async def test_a_workspace_admin_deletes_anyones_file(plexica_host: RunningHost, ws: Workspace) -> None:
    done = await upload(ws, "mia", b"mine")

    assert (await ws.call("DELETE", f"/files/{done['id']}", "ada")).status_code == 204

    event = await plexica_host.wait_for_event("files.file.deleted", tenant=ws.tenant)
    assert event.data["deleted_by"] == "ada" and event.data["owner_id"] == "mia"
