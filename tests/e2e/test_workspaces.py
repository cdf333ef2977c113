"""Workspaces end to end on the embedded host (SQLite): the tree, versions, members, selection, isolation."""

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


@pytest.fixture
async def people(make_host: MakeHost, tmp_path: Path) -> AsyncIterator[People]:
    recorder = EventRecorder()
    async with make_host(plugins=[recorder, WorkspaceTasksPlugin(tmp_path / "wstasks")]) as host:
        for slug in ("acme", "globex"):
            await host.platform.tenants.provision(slug)
        running = People(host, recorder)
        await running.enrol("alice", "bob", "carol", "dave")
        yield running


# ------------------------------------------------------------------ create, list, get


async def test_the_creator_becomes_admin_and_the_response_carries_version_and_location(people: People) -> None:
    response = await people.call("POST", "/workspaces", "alice", json={"name": "Sales — EMEA", "description": "d"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["name"], body["slug"], body["role"], body["version"], body["depth"]) == (
        "Sales — EMEA",
        "sales-emea",
        "admin",
        1,
        0,
    )
    assert body["parent_id"] is None and body["ancestor_ids"] == [] and body["status"] == "active"
    assert response.headers["etag"] == '"1"'
    assert response.headers["location"].endswith(f"/workspaces/{body['id']}")
    members = (await people.call("GET", f"/workspaces/{body['id']}/members", "alice")).json()["items"]
    assert [(m["user_id"], m["role"]) for m in members] == [("alice", "admin")]


async def test_members_list_only_their_workspaces_and_tenant_admins_see_all(people: People) -> None:
    sales = await people.create("alice", "Sales")
    await people.create("bob", "Ops")
    alice = (await people.call("GET", "/workspaces", "alice")).json()
    assert [w["name"] for w in alice["items"]] == ["Sales"] and alice["next_cursor"] is None

    admin = (await people.call("GET", "/workspaces", "carol", roles=["tenant_admin"])).json()
    assert [(w["name"], w["role"]) for w in admin["items"]] == [("Ops", None), ("Sales", None)]
    mine = (await people.call("GET", "/workspaces?mine=true", "carol", roles=["tenant_admin"])).json()
    assert mine["items"] == []
    seen = await people.call("GET", f"/workspaces/{sales['id']}", "carol", roles=["tenant_admin"])
    assert seen.status_code == 200 and seen.json()["role"] is None


async def test_a_non_member_gets_404_for_the_workspace_and_for_selecting_it(people: People) -> None:
    sales = await people.create("alice", "Sales")
    assert_problem(await people.call("GET", f"/workspaces/{sales['id']}", "bob"), 404)
    assert_problem(await people.call("GET", f"/workspaces/{sales['id']}/members", "bob"), 404)
    assert_problem(await people.call("POST", f"/workspaces/{sales['id']}/archive", "bob"), 404)
    selected = await people.call("GET", "/me", "bob", headers={"X-Workspace-ID": sales["id"]})
    assert_problem(selected, 404)
    # The same 404 for a workspace that does not exist, or an id that is not one.
    for bogus in ("00000000-0000-4000-8000-000000000000", "not-a-workspace", sales["id"].upper()):
        assert_problem(await people.call("GET", "/me", "alice", headers={"X-Workspace-ID": bogus}), 404)
    own = await people.call("GET", "/me", "alice", headers={"X-Workspace-ID": sales["id"]})
    assert own.status_code == 200 and own.json()["workspace"] == sales["id"]


async def test_a_workspace_of_another_tenant_is_not_found(people: People) -> None:
    await people.enrol("alice", tenant="globex")
    sales = await people.create("alice", "Sales")
    response = await people.call("GET", f"/workspaces/{sales['id']}", "alice", tenant="globex")
    assert_problem(response, 404)
    selected = await people.call("GET", "/me", "alice", tenant="globex", headers={"X-Workspace-ID": sales["id"]})
    assert_problem(selected, 404)


async def test_selecting_a_workspace_needs_a_token(people: People) -> None:
    sales = await people.create("alice", "Sales")
    response = await people.host.client.get(f"{API}/me", headers={"X-Tenant-ID": "acme", "X-Workspace-ID": sales["id"]})
    assert_problem(response, 401)


async def test_listing_pages_through_every_workspace_once_in_name_order(people: People) -> None:
    names = [f"ws-{i:02d}" for i in (7, 3, 9, 1, 5)]
    for name in names:
        await people.create("alice", name)
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        query = "/workspaces?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await people.call("GET", query, "alice")).json()
        assert len(page["items"]) <= 2
        seen += [w["name"] for w in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(names)
    assert_problem(await people.call("GET", "/workspaces?cursor=%%%", "alice"), 422, field="cursor")
    assert_problem(await people.call("GET", "/workspaces?limit=0", "alice"), 422, field="limit")
    assert_problem(await people.call("GET", "/workspaces?status=gone", "alice"), 422, field="status")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"name": "ok", "slug": "Not A Slug"}, "slug"),
        ({"name": "ok", "slug": "-lead"}, "slug"),
        ({"name": "ok", "description": 5}, "description"),
        ({"name": "ok", "parent_id": 7}, "parent_id"),
        ({"name": "!!!"}, "slug"),
    ],
    ids=["no-name", "empty-name", "long-name", "bad-slug", "dash-slug", "bad-description", "bad-parent", "no-slug"],
)
async def test_invalid_input_is_422_naming_the_field(people: People, body: dict[str, Any], field: str) -> None:
    assert_problem(await people.call("POST", "/workspaces", "alice", json=body), 422, field=field)


async def test_a_taken_slug_is_a_conflict(people: People) -> None:
    await people.create("alice", "Sales")
    assert_problem(await people.call("POST", "/workspaces", "bob", json={"name": "Sales"}), 409)


async def test_creating_needs_the_create_permission(people: People) -> None:
    response = await people.call("POST", "/workspaces", "alice", roles=["guest"], json={"name": "Sales"})
    assert_problem(response, 403)


# ------------------------------------------------------------------ versions


async def test_update_needs_if_match_and_refuses_a_stale_version(people: People) -> None:
    sales = await people.create("alice", "Sales")
    path = f"/workspaces/{sales['id']}"
    body = assert_problem(await people.call("PATCH", path, "alice", json={"name": "Sales 2"}), 428)
    assert "If-Match" in body["detail"]

    updated = await people.call("PATCH", path, "alice", json={"name": "Sales 2"}, headers={"If-Match": '"1"'})
    assert updated.status_code == 200 and updated.json()["version"] == 2 and updated.headers["etag"] == '"2"'
    stale = await people.call("PATCH", path, "alice", json={"name": "Sales 3"}, headers={"If-Match": '"1"'})
    assert_problem(stale, 409)
    forced = await people.call("PATCH", path, "alice", json={"description": "x"}, headers={"If-Match": "*"})
    assert forced.status_code == 200 and forced.json()["version"] == 3
    bad = await people.call("PATCH", path, "alice", json={"name": "y"}, headers={"If-Match": "three"})
    assert_problem(bad, 422, field="If-Match")
    unknown = await people.call("PATCH", path, "alice", json={"status": "archived"}, headers={"If-Match": "*"})
    assert_problem(unknown, 422, field="status")


async def test_only_a_workspace_admin_updates_it(people: People) -> None:
    sales = await people.create("alice", "Sales")
    await people.add("alice", sales["id"], "bob", "member")
    response = await people.call(
        "PATCH", f"/workspaces/{sales['id']}", "bob", json={"name": "mine"}, headers={"If-Match": "*"}
    )
    assert_problem(response, 403)
    admin = await people.call(
        "PATCH",
        f"/workspaces/{sales['id']}",
        "carol",
        roles=["tenant_admin"],
        json={"slug": "sales-x"},
        headers={"If-Match": '"1"'},
    )
    assert admin.status_code == 200 and admin.json()["slug"] == "sales-x"


# ------------------------------------------------------------------ the tree


async def chain(people: People, length: int, prefix: str = "level") -> list[dict[str, Any]]:
    made: list[dict[str, Any]] = []
    for depth in range(length):
        parent = made[-1]["id"] if made else None
        made.append(await people.create("alice", f"{prefix}-{depth}", parent_id=parent))
    return made


async def test_workspaces_nest_at_most_ten_levels_below_a_root(people: People) -> None:
    levels = await chain(people, 11)
    assert [w["depth"] for w in levels] == list(range(11))
    assert levels[-1]["ancestor_ids"] == [w["id"] for w in levels[:-1]]
    too_deep = await people.call("POST", "/workspaces", "alice", json={"name": "x", "parent_id": levels[-1]["id"]})
    assert_problem(too_deep, 422, field="parent_id")


async def test_children_need_the_parents_admin_role_and_an_invisible_parent_is_unknown(people: People) -> None:
    root = await people.create("alice", "Root")
    hidden = await people.call("POST", "/workspaces", "bob", json={"name": "Kid", "parent_id": root["id"]})
    assert_problem(hidden, 422, field="parent_id")
    await people.add("alice", root["id"], "bob", "member")
    forbidden = await people.call("POST", "/workspaces", "bob", json={"name": "Kid", "parent_id": root["id"]})
    assert_problem(forbidden, 403)
    children = (await people.call("GET", f"/workspaces?parent_id={root['id']}", "alice")).json()["items"]
    assert children == []


async def test_moving_refuses_cycles_and_too_deep_a_result(people: People) -> None:
    a, b, c = await chain(people, 3, "abc")
    for target in (a["id"], b["id"], c["id"]):
        response = await people.call("POST", f"/workspaces/{a['id']}/move", "alice", json={"parent_id": target})
        assert_problem(response, 422, field="parent_id")

    moved = await people.call("POST", f"/workspaces/{c['id']}/move", "alice", json={"parent_id": None})
    assert moved.status_code == 200 and moved.json()["depth"] == 0 and moved.json()["version"] == 2
    moved_b = await people.call("POST", f"/workspaces/{b['id']}/move", "alice", json={"parent_id": c["id"]})
    assert moved_b.json()["ancestor_ids"] == [c["id"]]

    deep = await chain(people, 9, "deep")  # depths 0..8
    two = await chain(people, 2, "two")  # depths 0..1; moved under depth 8 it would reach 10: allowed
    ok = await people.call("POST", f"/workspaces/{two[0]['id']}/move", "alice", json={"parent_id": deep[-1]["id"]})
    assert ok.status_code == 200, ok.text
    leaf = (await people.call("GET", f"/workspaces/{two[1]['id']}", "alice")).json()
    assert leaf["depth"] == 10 and leaf["ancestor_ids"][-1] == two[0]["id"]
    three = await chain(people, 2, "three")
    too_deep = await people.call(
        "POST", f"/workspaces/{three[0]['id']}/move", "alice", json={"parent_id": two[0]["id"]}
    )
    assert_problem(too_deep, 422, field="parent_id")
    stale = await people.call(
        "POST", f"/workspaces/{c['id']}/move", "alice", json={"parent_id": a["id"]}, headers={"If-Match": '"1"'}
    )
    assert_problem(stale, 409)


async def test_archive_takes_the_subtree_and_restore_brings_back_what_went_with_it(people: People) -> None:
    a, b, c = await chain(people, 3, "arc")
    early = await people.call("POST", f"/workspaces/{c['id']}/archive", "alice")
    assert early.status_code == 200 and early.json()["status"] == "archived"

    archived = await people.call("POST", f"/workspaces/{a['id']}/archive", "alice", headers={"If-Match": '"1"'})
    assert archived.status_code == 200 and archived.json()["status"] == "archived"
    statuses = {
        w["name"]: w["status"] for w in (await people.call("GET", "/workspaces?status=all", "alice")).json()["items"]
    }
    assert statuses == {"arc-0": "archived", "arc-1": "archived", "arc-2": "archived"}
    again = await people.call("POST", f"/workspaces/{a['id']}/archive", "alice")
    assert again.status_code == 200 and again.json()["version"] == archived.json()["version"]

    # Archived means read-only.
    assert_problem(
        await people.call("PATCH", f"/workspaces/{b['id']}", "alice", json={"name": "n"}, headers={"If-Match": "*"}),
        409,
    )
    assert_problem(await people.call("POST", "/workspaces", "alice", json={"name": "k", "parent_id": a["id"]}), 409)
    assert_problem(await people.call("POST", f"/workspaces/{a['id']}/members", "alice", json={"user_id": "bob"}), 409)
    assert_problem(await people.call("POST", f"/workspaces/{b['id']}/restore", "alice"), 409)  # parent archived

    restored = await people.call("POST", f"/workspaces/{a['id']}/restore", "alice")
    assert restored.status_code == 200 and restored.json()["status"] == "active"
    statuses = {
        w["name"]: w["status"] for w in (await people.call("GET", "/workspaces?status=all", "alice")).json()["items"]
    }
    assert statuses == {"arc-0": "active", "arc-1": "active", "arc-2": "archived"}

    await people.settle()
    # Events of different workspaces may arrive in any order (each workspace is its own key).
    archived_events = sorted(
        (e.data["root_id"], e.data["workspace_id"]) for e in people.recorder.of("core.workspace.archived")
    )
    assert archived_events == sorted([(c["id"], c["id"]), (a["id"], a["id"]), (a["id"], b["id"])])
    restored_events = sorted(
        (e.data["root_id"], e.data["workspace_id"]) for e in people.recorder.of("core.workspace.restored")
    )
    assert restored_events == sorted([(a["id"], a["id"]), (a["id"], b["id"])])


# ------------------------------------------------------------------ members


async def test_member_roles_rank_and_the_last_admin_stays(people: People) -> None:
    ws = await people.create("alice", "Team")
    members = f"/workspaces/{ws['id']}/members"
    await people.add("alice", ws["id"], "bob", "viewer")
    assert (await people.call("GET", f"/workspaces/{ws['id']}", "bob")).json()["role"] == "viewer"
    assert_problem(await people.call("POST", members, "bob", json={"user_id": "carol"}), 403)
    assert_problem(await people.call("PATCH", f"{members}/bob", "bob", json={"role": "admin"}), 403)

    assert_problem(await people.call("PATCH", f"{members}/alice", "alice", json={"role": "member"}), 409)
    assert_problem(await people.call("DELETE", f"{members}/alice", "alice"), 409)

    promoted = await people.call("PATCH", f"{members}/bob", "alice", json={"role": "admin"})
    assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
    demoted = await people.call("PATCH", f"{members}/alice", "alice", json={"role": "viewer"})
    assert demoted.status_code == 200
    assert (await people.call("DELETE", f"{members}/alice", "alice")).status_code == 204  # leaving
    assert_problem(await people.call("GET", f"/workspaces/{ws['id']}", "alice"), 404)

    assert_problem(await people.call("POST", members, "bob", json={"user_id": "nobody"}), 422, field="user_id")
    assert_problem(
        await people.call("POST", members, "bob", json={"user_id": "carol", "role": "owner"}), 422, field="role"
    )
    await people.add("bob", ws["id"], "carol")
    assert_problem(await people.call("POST", members, "bob", json={"user_id": "carol"}), 409)
    assert_problem(await people.call("PATCH", f"{members}/dave", "bob", json={"role": "viewer"}), 404)

    await people.settle()
    kinds = [(e.type, e.data["user_id"]) for e in people.recorder.events if e.type.startswith("core.workspace.member")]
    assert sorted(kinds) == sorted(
        [
            ("core.workspace.member.added", "alice"),
            ("core.workspace.member.added", "bob"),
            ("core.workspace.member.role-updated", "bob"),
            ("core.workspace.member.role-updated", "alice"),
            ("core.workspace.member.removed", "alice"),
            ("core.workspace.member.added", "carol"),
        ]
    )
    assert all(e.workspaceid == ws["id"] for e in people.recorder.events if e.type.startswith("core.workspace"))


@pytest.mark.parametrize(
    "who",
    ["each-leaves", "tenant-admin-removes-both"],
)
async def test_two_concurrent_removals_of_the_last_two_admins_end_with_one_success_and_one_409(
    people: People, who: str
) -> None:
    for round_ in range(5):
        ws = await people.create("alice", f"race-{round_}")
        await people.add("alice", ws["id"], "bob", "admin")
        members = f"/workspaces/{ws['id']}/members"
        if who == "each-leaves":
            calls = [people.call("DELETE", f"{members}/alice", "alice"), people.call("DELETE", f"{members}/bob", "bob")]
        else:
            calls = [
                people.call("DELETE", f"{members}/{user}", "carol", roles=["tenant_admin"]) for user in ("alice", "bob")
            ]
        first, second = await asyncio.gather(*calls)
        assert sorted([first.status_code, second.status_code]) == [204, 409], (first.text, second.text)
        survivors = await people.call("GET", members, "carol", roles=["tenant_admin"])
        assert [m["role"] for m in survivors.json()["items"]] == ["admin"]


async def test_two_admins_removing_each_other_at_once_leave_one_admin(people: People) -> None:
    # The loser is no longer a member when their turn comes: the workspace is gone for them (404).
    for round_ in range(5):
        ws = await people.create("alice", f"cross-{round_}")
        await people.add("alice", ws["id"], "bob", "admin")
        members = f"/workspaces/{ws['id']}/members"
        first, second = await asyncio.gather(
            people.call("DELETE", f"{members}/bob", "alice"), people.call("DELETE", f"{members}/alice", "bob")
        )
        assert sorted([first.status_code, second.status_code]) == [204, 404], (first.text, second.text)
        survivors = await people.call("GET", members, "carol", roles=["tenant_admin"])
        assert [m["role"] for m in survivors.json()["items"]] == ["admin"]


async def test_removing_a_member_takes_effect_on_their_next_selection(people: People) -> None:
    ws = await people.create("alice", "Team")
    await people.add("alice", ws["id"], "bob")
    select = {"X-Workspace-ID": ws["id"]}
    assert (await people.call("GET", "/me", "bob", headers=select)).status_code == 200
    assert (await people.call("DELETE", f"/workspaces/{ws['id']}/members/bob", "alice")).status_code == 204
    assert_problem(await people.call("GET", "/me", "bob", headers=select), 404)


# ------------------------------------------------------------------ plugin data


async def test_members_of_workspace_a_never_see_workspace_b_plugin_data(people: People) -> None:
    a = await people.create("alice", "A")
    b = await people.create("bob", "B")
    tasks = "/api/plugins/wstasks/tasks"
    client = people.host.client

    made_a = await client.post(tasks, json={"title": "a-secret"}, headers=people.headers("alice", workspace=a["id"]))
    made_b = await client.post(tasks, json={"title": "b-secret"}, headers=people.headers("bob", workspace=b["id"]))
    assert made_a.status_code == made_b.status_code == 201

    seen_a = (await client.get(tasks, headers=people.headers("alice", workspace=a["id"]))).json()["items"]
    seen_b = (await client.get(tasks, headers=people.headers("bob", workspace=b["id"]))).json()["items"]
    assert [t["title"] for t in seen_a] == ["a-secret"]
    assert [t["title"] for t in seen_b] == ["b-secret"]

    # Alice cannot select B, not even to read; without a workspace the plugin refuses to guess.
    assert_problem(await client.get(tasks, headers=people.headers("alice", workspace=b["id"])), 404)
    assert_problem(await client.get(tasks, headers=people.headers("alice")), 422, field="X-Workspace-ID")
    # A tenant admin may select any workspace, and still sees only that one's rows.
    admin = people.headers("carol", roles=["tenant_admin"], workspace=b["id"])
    assert [t["title"] for t in (await client.get(tasks, headers=admin)).json()["items"]] == ["b-secret"]

    # Once Bob is removed from B, his next request no longer reaches B's data.
    await people.add("bob", b["id"], "dave")
    await people.call("DELETE", f"/workspaces/{b['id']}/members/dave", "bob")
    assert_problem(await client.get(tasks, headers=people.headers("dave", workspace=b["id"])), 404)


async def test_an_archived_workspace_is_selectable_for_reading_only(people: People) -> None:
    a = await people.create("alice", "A")
    tasks = "/api/plugins/wstasks/tasks"
    headers = people.headers("alice", workspace=a["id"])
    await people.host.client.post(tasks, json={"title": "t"}, headers=headers)
    await people.call("POST", f"/workspaces/{a['id']}/archive", "alice")
    read = await people.host.client.get(tasks, headers=headers)
    assert read.status_code == 200 and len(read.json()["items"]) == 1
    assert_problem(await people.host.client.post(tasks, json={"title": "u"}, headers=headers), 409)
    # The core API's own rules apply to it: restoring it while it is selected works.
    restored = await people.call("POST", f"/workspaces/{a['id']}/restore", "alice", headers={"X-Workspace-ID": a["id"]})
    assert restored.status_code == 200
    assert (await people.host.client.post(tasks, json={"title": "u"}, headers=headers)).status_code == 201
