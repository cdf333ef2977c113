"""The workspace service on SQLite and PostgreSQL: tree rules, members, and the races that must not break them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from plexica.workspaces.models import MAX_DEPTH, Actor, Workspace
from plexica.workspaces.repository import WorkspaceRepository
from plexica_sdk.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from tests.plexica.identity.support import World

pytestmark = pytest.mark.anyio

ALICE = Actor(user_id="alice", can_create=True)
BOB = Actor(user_id="bob", can_create=True)
ADMIN = Actor(user_id="carol", manage_all=True, can_create=True)


@pytest.fixture
async def ready(world: World) -> World:
    await world.enrol("alice", "bob", "carol", "dave")
    world.published.events.clear()
    return world


async def make(world: World, name: str, actor: Actor = ALICE, parent: Workspace | None = None) -> Workspace:
    return await world.workspaces.create(world.ctx, actor, name=name, parent_id=parent.id if parent else None)


async def outcome(call: Any) -> str:
    try:
        await call
    except Exception as exc:
        return type(exc).__name__
    return "ok"


async def test_create_records_the_path_and_makes_the_creator_admin(ready: World) -> None:
    root = await make(ready, "Root")
    child = await make(ready, "Child", parent=root)
    assert (root.path, root.depth, root.role) == (f"/{root.id}/", 0, "admin")
    assert (child.path, child.depth, child.ancestor_ids) == (f"/{root.id}/{child.id}/", 1, (root.id,))
    assert [e for e, _, _ in ready.published.events] == [
        "core.workspace.created",
        "core.workspace.member.added",
        "core.workspace.created",
        "core.workspace.member.added",
    ]
    assert {ws for _, _, ws in ready.published.events} == {root.id, child.id}


async def test_a_root_needs_the_create_permission(ready: World) -> None:
    with pytest.raises(PermissionDeniedError):
        await make(ready, "Nope", Actor(user_id="alice"))


async def test_a_removed_user_owns_nothing(ready: World) -> None:
    await ready.users.remove(ready.ctx, "dave", actor_id="carol")
    with pytest.raises(PermissionDeniedError):
        await make(ready, "Dave's", Actor(user_id="dave", can_create=True))


async def test_depth_is_limited_when_creating_and_when_moving(ready: World) -> None:
    levels = [await make(ready, "l0")]
    for depth in range(1, MAX_DEPTH + 1):
        levels.append(await make(ready, f"l{depth}", parent=levels[-1]))
    with pytest.raises(ValidationError) as too_deep:
        await make(ready, "l11", parent=levels[-1])
    assert too_deep.value.field == "parent_id"

    pair = await make(ready, "p0")
    await make(ready, "p1", parent=pair)
    with pytest.raises(ValidationError):
        await ready.workspaces.move(ready.ctx, ALICE, pair.id, levels[-2].id)  # would reach depth 11
    moved = await ready.workspaces.move(ready.ctx, ALICE, pair.id, levels[-3].id)  # reaches exactly 10
    assert moved.depth == MAX_DEPTH - 1


async def test_moving_rewrites_the_whole_subtree(ready: World) -> None:
    a = await make(ready, "a")
    b = await make(ready, "b", parent=a)
    c = await make(ready, "c", parent=b)
    other = await make(ready, "other")
    await ready.workspaces.move(ready.ctx, ALICE, b.id, other.id)
    moved_c = await ready.workspaces.get(ready.ctx, ALICE, c.id)
    assert moved_c.path == f"/{other.id}/{b.id}/{c.id}/" and moved_c.depth == 2 and moved_c.version == 2
    made_root = await ready.workspaces.move(ready.ctx, ALICE, b.id, None)
    assert (made_root.path, made_root.depth, made_root.parent_id) == (f"/{b.id}/", 0, None)
    assert (await ready.workspaces.get(ready.ctx, ALICE, c.id)).depth == 1


async def test_a_slug_is_unique_per_tenant_even_when_two_creates_race(ready: World) -> None:
    results = await asyncio.gather(
        *(outcome(make(ready, "Same", actor)) for actor in (ALICE, BOB)),
    )
    assert sorted(results) == ["ConflictError", "ok"]


async def test_update_checks_the_version_and_publishes_what_changed(ready: World) -> None:
    ws = await make(ready, "Name")
    updated = await ready.workspaces.update(ready.ctx, ALICE, ws.id, {"name": "New", "description": None}, version=1)
    assert (updated.name, updated.version) == ("New", 2)
    assert ready.published.of("core.workspace.updated")[-1]["changes"] == ["name"]
    with pytest.raises(ConflictError):
        await ready.workspaces.update(ready.ctx, ALICE, ws.id, {"name": "Newer"}, version=1)
    unchanged = await ready.workspaces.update(ready.ctx, ALICE, ws.id, {"name": "New"}, version=2)
    assert unchanged.version == 2


async def test_a_non_member_cannot_tell_a_workspace_exists(ready: World) -> None:
    ws = await make(ready, "Private")
    for call in (
        ready.workspaces.get(ready.ctx, BOB, ws.id),
        ready.workspaces.members(ready.ctx, BOB, ws.id),
        ready.workspaces.archive(ready.ctx, BOB, ws.id),
        ready.workspaces.add_member(ready.ctx, BOB, ws.id, "bob", "admin"),
        ready.workspaces.remove_member(ready.ctx, BOB, ws.id, "alice"),
    ):
        with pytest.raises(NotFoundError):
            await call
    assert await ready.workspaces.selection(ready.ctx, ws.id, "bob") is not None  # exists, but no role
    assert (await ready.workspaces.selection(ready.ctx, ws.id, "bob")).role is None  # type: ignore[union-attr]


async def test_selection_is_cached_and_invalidated_by_member_changes(ready: World) -> None:
    ws = await make(ready, "Team")
    assert (await ready.workspaces.selection(ready.ctx, ws.id, "bob")).role is None  # type: ignore[union-attr]
    await ready.workspaces.add_member(ready.ctx, ALICE, ws.id, "bob", "viewer")
    assert (await ready.workspaces.selection(ready.ctx, ws.id, "bob")).role == "viewer"  # type: ignore[union-attr]
    await ready.workspaces.archive(ready.ctx, ALICE, ws.id)
    assert (await ready.workspaces.selection(ready.ctx, ws.id, "bob")).status == "archived"  # type: ignore[union-attr]
    await ready.users.remove(ready.ctx, "bob", actor_id="carol")
    assert (await ready.workspaces.selection(ready.ctx, ws.id, "bob")).role is None  # type: ignore[union-attr]
    assert await ready.workspaces.selection(ready.ctx, "00000000-0000-4000-8000-000000000000", "bob") is None


# ------------------------------------------------------------------ races


@pytest.mark.parametrize("who", ["each-leaves", "tenant-admin-removes-both", "admins-remove-each-other"])
async def test_two_concurrent_removals_of_the_last_two_admins_leave_exactly_one(ready: World, who: str) -> None:
    for round_ in range(15):
        ws = await make(ready, f"race-{round_}")
        await ready.workspaces.add_member(ready.ctx, ALICE, ws.id, "bob", "admin")
        remove = ready.workspaces.remove_member
        if who == "each-leaves":
            calls = [remove(ready.ctx, ALICE, ws.id, "alice"), remove(ready.ctx, BOB, ws.id, "bob")]
        elif who == "tenant-admin-removes-both":
            calls = [remove(ready.ctx, ADMIN, ws.id, "alice"), remove(ready.ctx, ADMIN, ws.id, "bob")]
        else:
            calls = [remove(ready.ctx, ALICE, ws.id, "bob"), remove(ready.ctx, BOB, ws.id, "alice")]
        results = sorted(await asyncio.gather(*(outcome(call) for call in calls)))
        loser = "NotFoundError" if who == "admins-remove-each-other" else "ConflictError"
        assert results == sorted(["ok", loser]), f"round {round_}"
        members = await ready.workspaces.members(ready.ctx, ADMIN, ws.id)
        assert [m.role for m in members.items] == ["admin"]


async def test_a_concurrent_demotion_and_removal_keep_one_admin(ready: World) -> None:
    for round_ in range(15):
        ws = await make(ready, f"mixed-{round_}")
        await ready.workspaces.add_member(ready.ctx, ALICE, ws.id, "bob", "admin")
        results = await asyncio.gather(
            outcome(ready.workspaces.set_role(ready.ctx, ADMIN, ws.id, "alice", "viewer")),
            outcome(ready.workspaces.remove_member(ready.ctx, ADMIN, ws.id, "bob")),
        )
        assert sorted(results) == ["ConflictError", "ok"], f"round {round_}"
        members = await ready.workspaces.members(ready.ctx, ADMIN, ws.id)
        assert [m.role for m in members.items].count("admin") == 1


async def test_two_crossing_moves_never_make_a_cycle(ready: World) -> None:
    for round_ in range(10):
        a = await make(ready, f"a-{round_}")
        b = await make(ready, f"b-{round_}")
        results = await asyncio.gather(
            outcome(ready.workspaces.move(ready.ctx, ALICE, a.id, b.id)),
            outcome(ready.workspaces.move(ready.ctx, ALICE, b.id, a.id)),
        )
        assert sorted(results) == ["ValidationError", "ok"], f"round {round_}"
        a2 = await ready.workspaces.get(ready.ctx, ALICE, a.id)
        b2 = await ready.workspaces.get(ready.ctx, ALICE, b.id)
        assert (a2.parent_id is None) != (b2.parent_id is None)


async def test_creating_under_a_parent_being_archived_leaves_no_active_child(ready: World) -> None:
    for round_ in range(10):
        parent = await make(ready, f"parent-{round_}")
        await asyncio.gather(
            outcome(make(ready, f"child-{round_}", parent=parent)),
            outcome(ready.workspaces.archive(ready.ctx, ALICE, parent.id)),
        )
        page = await ready.workspaces.list(ready.ctx, ALICE, parent=parent.id, status="active")
        assert page.items == ()


async def test_archive_and_restore_work_by_batch(ready: World) -> None:
    a = await make(ready, "a")
    b = await make(ready, "b", parent=a)
    c = await make(ready, "c", parent=b)
    await ready.workspaces.archive(ready.ctx, ALICE, c.id)
    archived = await ready.workspaces.archive(ready.ctx, ALICE, a.id)
    assert archived.status == "archived" and archived.version == 2
    with pytest.raises(ConflictError):
        await ready.workspaces.restore(ready.ctx, ALICE, b.id)
    await ready.workspaces.restore(ready.ctx, ALICE, a.id)
    states = {w.name: w.status for w in (await ready.workspaces.list(ready.ctx, ALICE, status="all")).items}
    assert states == {"a": "active", "b": "active", "c": "archived"}
    restored_c = await ready.workspaces.restore(ready.ctx, ALICE, c.id)
    assert restored_c.status == "active"


async def test_repository_pages_by_name_then_id(ready: World) -> None:
    for name in ("b", "a", "c"):
        await make(ready, name)
    repo = WorkspaceRepository()
    async with ready.db.tenant_connection(ready.ctx.schema) as conn:
        first = await repo.page(conn, user_id="alice", members_only=True, parent=None, status=None, after=None, limit=2)
        rest = await repo.page(
            conn,
            user_id="alice",
            members_only=True,
            parent=None,
            status=None,
            after=(first[-1].name, first[-1].id),
            limit=2,
        )
        assert [w.name for w in first + rest] == ["a", "b", "c"]
        assert await repo.drop_user(conn, "alice") == sorted((w.id, "admin") for w in first + rest)
