"""Users, teams and super-admins end to end on the embedded host (SQLite)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Host
from tests.e2e.people import API, EventRecorder, People, WorkspaceTasksPlugin, assert_problem

pytestmark = pytest.mark.anyio

MakeHost = Callable[..., AbstractAsyncContextManager[Host]]
ADMIN = ["tenant_admin"]


@pytest.fixture
async def people(make_host: MakeHost, tmp_path: Path) -> AsyncIterator[People]:
    recorder = EventRecorder()
    async with make_host(plugins=[recorder, WorkspaceTasksPlugin(tmp_path / "wstasks")]) as host:
        for slug in ("acme", "globex"):
            await host.platform.tenants.provision(slug)
        yield People(host, recorder)


def platform_token(host: Host, subject: str, roles: list[str] | None = None) -> dict[str, str]:
    issuer = host.platform.dev_issuer
    assert issuer is not None
    token = issuer.mint(realm="plexica-platform", subject=subject, roles=roles or ["super_admin"])
    return host.auth(token)


# ------------------------------------------------------------------ profiles


async def test_the_first_request_creates_the_profile_from_the_token_claims(people: People) -> None:
    host = people.host
    token = host.auth(host.token("acme", user="alice", email="alice@example.com"))
    assert (await host.client.get(f"{API}/me", headers=token)).status_code == 200
    profile = (await people.call("GET", "/users/alice", "bob")).json()
    assert (profile["id"], profile["username"], profile["email"], profile["status"]) == (
        "alice",
        "alice",
        "alice@example.com",
        "active",
    )
    # Only this tenant knows her.
    assert_problem(await people.call("GET", "/users/alice", "bob", tenant="globex"), 404)

    changed = host.auth(host.token("acme", user="alice", email="alice@new.example"))
    assert (await host.client.get(f"{API}/me", headers=changed)).status_code == 200
    assert (await people.call("GET", "/users/alice", "bob")).json()["email"] == "alice@new.example"

    await people.settle()
    created = [e.data["user_id"] for e in people.recorder.of("core.user.created")]
    assert sorted(created) == ["alice", "bob", "bob"]  # bob came to acme, then to globex
    [updated] = people.recorder.of("core.user.updated")
    assert updated.data == {"user_id": "alice", "username": "alice", "status": "active", "changes": ["email"]}
    assert "alice@" not in str(updated.data)  # no personal data on the bus


async def test_a_returning_user_costs_no_database_work(people: People, monkeypatch: pytest.MonkeyPatch) -> None:
    await people.enrol("alice")

    async def no_database(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the admission went to the database")

    monkeypatch.setattr(people.host.platform.users.repo, "get", no_database)
    for _ in range(3):
        assert (await people.call("GET", "/me", "alice")).status_code == 200


async def test_concurrent_first_requests_create_one_profile(people: People) -> None:
    responses = await asyncio.gather(*(people.call("GET", "/me", "zoe") for _ in range(8)))
    assert {r.status_code for r in responses} == {200}
    listed = (await people.call("GET", "/users", "zoe")).json()["items"]
    assert [u["id"] for u in listed] == ["zoe"]
    await people.settle()
    assert len(people.recorder.of("core.user.created")) == 1


async def test_a_disabled_user_is_refused_at_once_while_the_token_is_valid(people: People) -> None:
    await people.enrol("alice", "admin")
    alice = people.headers("alice")
    assert (await people.host.client.get(f"{API}/me", headers=alice)).status_code == 200

    disabled = await people.call("POST", "/users/alice/disable", "admin", roles=ADMIN)
    assert disabled.status_code == 200 and disabled.json()["status"] == "disabled"
    for path in (f"{API}/me", f"{API}/workspaces", "/api/plugins/notes/notes"):
        assert_problem(await people.host.client.get(path, headers=alice), 403)

    enabled = await people.call("POST", "/users/alice/enable", "admin", roles=ADMIN)
    assert enabled.status_code == 200 and enabled.json()["status"] == "active"
    assert (await people.host.client.get(f"{API}/me", headers=alice)).status_code == 200


async def test_removal_drops_every_membership_and_refuses_the_user_at_once(people: People) -> None:
    await people.enrol("alice", "bob", "admin")
    own = await people.create("alice", "Alice's")
    shared = await people.create("bob", "Shared")
    await people.add("bob", shared["id"], "alice", "admin")
    team = (await people.call("POST", "/teams", "admin", roles=ADMIN, json={"name": "Core"})).json()
    assert (
        await people.call("POST", f"/teams/{team['id']}/members", "admin", roles=ADMIN, json={"user_id": "alice"})
    ).status_code == 201
    selected = people.headers("alice", workspace=own["id"])
    assert (await people.host.client.get("/api/plugins/wstasks/tasks", headers=selected)).status_code == 200

    assert (await people.call("DELETE", "/users/alice", "admin", roles=ADMIN)).status_code == 204
    assert_problem(await people.host.client.get("/api/plugins/wstasks/tasks", headers=selected), 403)
    assert_problem(await people.call("GET", "/me", "alice"), 403)

    profile = (await people.call("GET", "/users/alice", "admin", roles=ADMIN)).json()
    assert profile["status"] == "removed" and profile["removed_at"] is not None
    shared_members = (await people.call("GET", f"/workspaces/{shared['id']}/members", "bob")).json()["items"]
    assert [m["user_id"] for m in shared_members] == ["bob"]
    team_members = (await people.call("GET", f"/teams/{team['id']}/members", "admin", roles=ADMIN)).json()["items"]
    assert team_members == []
    # Her own workspace lost its only admin; the tenant's admins still manage it.
    orphan = await people.call(
        "POST", f"/workspaces/{own['id']}/members", "admin", roles=ADMIN, json={"user_id": "bob", "role": "admin"}
    )
    assert orphan.status_code == 201

    again = await people.call("DELETE", "/users/alice", "admin", roles=ADMIN)
    assert again.status_code == 204
    await people.settle()
    assert [e.data["user_id"] for e in people.recorder.of("core.user.removed")] == ["alice"]
    removed = {(e.data["workspace_id"], e.data["user_id"]) for e in people.recorder.of("core.workspace.member.removed")}
    assert removed == {(own["id"], "alice"), (shared["id"], "alice")}

    # Enabling brings her back, without any membership.
    assert (await people.call("POST", "/users/alice/enable", "admin", roles=ADMIN)).status_code == 200
    assert (await people.call("GET", "/workspaces", "alice")).json()["items"] == []


async def test_user_management_rules(people: People) -> None:
    await people.enrol("alice", "admin")
    assert_problem(await people.call("DELETE", "/users/alice", "bob"), 403)  # members may not manage users
    assert_problem(await people.call("POST", "/users/alice/disable", "bob"), 403)
    assert_problem(await people.call("DELETE", "/users/admin", "admin", roles=ADMIN), 409)  # not yourself
    assert_problem(await people.call("POST", "/users/admin/disable", "admin", roles=ADMIN), 409)
    assert_problem(await people.call("DELETE", "/users/nobody", "admin", roles=ADMIN), 404)
    assert (await people.call("DELETE", "/users/alice", "admin", roles=ADMIN)).status_code == 204
    assert_problem(await people.call("POST", "/users/alice/disable", "admin", roles=ADMIN), 409)  # removed


async def test_users_are_listed_by_username_page_by_page_and_filtered_by_status(people: People) -> None:
    await people.enrol("erin", "carl", "dina", "bert", "admin")
    await people.call("POST", "/users/dina/disable", "admin", roles=ADMIN)
    seen: list[str] = []
    cursor = ""
    while True:
        page = (await people.call("GET", f"/users?limit=2{cursor}", "admin", roles=ADMIN)).json()
        seen += [u["id"] for u in page["items"]]
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert seen == ["admin", "bert", "carl", "dina", "erin"]
    disabled = (await people.call("GET", "/users?status=disabled", "admin", roles=ADMIN)).json()["items"]
    assert [u["id"] for u in disabled] == ["dina"]
    assert_problem(await people.call("GET", "/users?status=gone", "admin", roles=ADMIN), 422, field="status")


# ------------------------------------------------------------------ teams


async def test_teams_and_their_members(people: People) -> None:
    await people.enrol("alice", "bob", "admin")
    created = await people.call("POST", "/teams", "admin", roles=ADMIN, json={"name": "Platform", "description": "p"})
    assert created.status_code == 201, created.text
    team = created.json()
    assert created.headers["location"].endswith(f"/teams/{team['id']}")
    assert_problem(await people.call("POST", "/teams", "admin", roles=ADMIN, json={"name": "platform"}), 409)
    assert_problem(await people.call("POST", "/teams", "admin", roles=ADMIN, json={"name": ""}), 422, field="name")
    assert_problem(await people.call("POST", "/teams", "alice", json={"name": "Mine"}), 403)

    members = f"/teams/{team['id']}/members"
    for user in ("alice", "bob"):
        assert (await people.call("POST", members, "admin", roles=ADMIN, json={"user_id": user})).status_code == 201
    assert_problem(await people.call("POST", members, "admin", roles=ADMIN, json={"user_id": "bob"}), 409)
    assert_problem(
        await people.call("POST", members, "admin", roles=ADMIN, json={"user_id": "nobody"}), 422, field="user_id"
    )

    read = (await people.call("GET", f"/teams/{team['id']}", "alice")).json()  # members may read
    assert (read["name"], read["member_count"]) == ("Platform", 2)
    listed = (await people.call("GET", f"{members}?limit=1", "alice")).json()
    assert [m["user_id"] for m in listed["items"]] == ["alice"] and listed["next_cursor"]

    renamed = await people.call("PATCH", f"/teams/{team['id']}", "admin", roles=ADMIN, json={"name": "Platform Eng"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Platform Eng"
    assert_problem(await people.call("PATCH", f"/teams/{team['id']}", "admin", roles=ADMIN, json={"id": "x"}), 422)

    assert (await people.call("DELETE", f"{members}/bob", "admin", roles=ADMIN)).status_code == 204
    assert_problem(await people.call("DELETE", f"{members}/bob", "admin", roles=ADMIN), 404)
    assert (await people.call("DELETE", f"/teams/{team['id']}", "admin", roles=ADMIN)).status_code == 204
    assert_problem(await people.call("GET", f"/teams/{team['id']}", "alice"), 404)
    assert (await people.call("GET", "/teams", "alice")).json() == {"items": [], "next_cursor": None}


# ------------------------------------------------------------------ super-admins


async def test_the_super_admin_allow_list_narrows_the_platform_role(people: People) -> None:
    host = people.host
    root, eve = platform_token(host, "root"), platform_token(host, "eve")
    tenants = f"{API}/tenants"
    # Bootstrap: an empty list lets the role alone in.
    assert (await host.client.get(tenants, headers=eve)).status_code == 200
    first = await host.client.post(f"{API}/super-admins", headers=root, json={"user_id": "eve"})
    assert_problem(first, 409)  # the first entry must be the caller: nobody locks themselves out
    granted = await host.client.post(f"{API}/super-admins", headers=root, json={"user_id": "root", "username": "root"})
    assert granted.status_code == 201, granted.text

    assert_problem(await host.client.get(tenants, headers=eve), 403)  # role, but not on the list
    assert (await host.client.get(tenants, headers=root)).status_code == 200
    assert (await host.client.post(f"{API}/super-admins", headers=root, json={"user_id": "eve"})).status_code == 201
    assert (await host.client.get(tenants, headers=eve)).status_code == 200
    listed = (await host.client.get(f"{API}/super-admins", headers=eve)).json()["items"]
    assert [entry["user_id"] for entry in listed] == ["eve", "root"]

    assert (await host.client.delete(f"{API}/super-admins/eve", headers=root)).status_code == 204
    assert_problem(await host.client.get(tenants, headers=eve), 403)  # at once
    assert_problem(await host.client.delete(f"{API}/super-admins/root", headers=root), 409)  # never the last
    assert_problem(await host.client.delete(f"{API}/super-admins/eve", headers=root), 404)
    # A listed user without the platform role is no super-admin either.
    assert_problem(await host.client.get(tenants, headers=platform_token(host, "root", roles=["member"])), 403)


async def test_a_tenant_realms_super_admin_role_manages_nothing(people: People) -> None:
    forged = people.headers("mallory", roles=["super_admin"])
    assert_problem(await people.host.client.get(f"{API}/super-admins", headers=forged), 403)
    grant = await people.host.client.post(f"{API}/super-admins", headers=forged, json={"user_id": "mallory"})
    assert_problem(grant, 403)
