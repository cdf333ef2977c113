"""User profiles on SQLite and PostgreSQL: admission, claims, disabling, removal."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import plexica.identity.users as users_module
from plexica.identity.users import UserDisabledError, user_cache_keys
from plexica.workspaces.models import Actor
from plexica_sdk.errors import ConflictError, NotFoundError, ValidationError
from tests.plexica.identity.support import World, principal

pytestmark = pytest.mark.anyio


async def test_the_first_admission_creates_the_profile_from_the_claims(world: World) -> None:
    await world.users.admit(world.ctx, principal("alice", email="a@example.com", name="Alice A."))
    profile = await world.users.get(world.ctx, "alice")
    assert (profile.username, profile.email, profile.display_name, profile.status) == (
        "alice",
        "a@example.com",
        "Alice A.",
        "active",
    )
    assert world.published.of("core.user.created") == [{"user_id": "alice", "username": "alice", "status": "active"}]


async def test_a_returning_user_is_admitted_from_the_cache(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    await world.enrol("alice")

    async def no_database(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("went to the database")

    monkeypatch.setattr(world.users.repo, "get", no_database)
    for _ in range(3):
        await world.users.admit(world.ctx, principal("alice"))


async def test_changed_claims_update_the_profile_once(world: World) -> None:
    await world.enrol("alice")
    renamed = principal("alice", username="alice2", email="new@example.com")
    await world.users.admit(world.ctx, renamed)
    await world.users.admit(world.ctx, renamed)
    assert (await world.users.get(world.ctx, "alice")).username == "alice2"
    assert [d["changes"] for d in world.published.of("core.user.updated")] == [["username", "email"]]


async def test_last_seen_is_refreshed_only_when_stale(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    await world.enrol("alice")
    seen = (await world.users.get(world.ctx, "alice")).last_seen_at
    key, generation = user_cache_keys(world.ctx, "alice")
    await world.users.stamps.invalidate(generation, key)
    await world.users.admit(world.ctx, principal("alice"))
    assert (await world.users.get(world.ctx, "alice")).last_seen_at == seen
    monkeypatch.setattr(users_module, "SEEN_RESOLUTION", -1)
    await world.users.stamps.invalidate(generation, key)
    await world.users.admit(world.ctx, principal("alice"))
    assert (await world.users.get(world.ctx, "alice")).last_seen_at > seen


async def test_concurrent_first_admissions_create_one_profile(world: World) -> None:
    await asyncio.gather(*(world.users.admit(world.ctx, principal("zoe")) for _ in range(6)))
    page = await world.users.list(world.ctx)
    assert [u.id for u in page.items] == ["zoe"]
    assert len(world.published.of("core.user.created")) == 1


async def test_a_disabled_user_is_refused_until_enabled(world: World) -> None:
    await world.enrol("alice", "admin")
    disabled = await world.users.disable(world.ctx, "alice", actor_id="admin")
    assert disabled.status == "disabled"
    with pytest.raises(UserDisabledError) as refused:
        await world.users.admit(world.ctx, principal("alice"))
    assert refused.value.status == "disabled"
    assert (await world.users.disable(world.ctx, "alice", actor_id="admin")).status == "disabled"  # idempotent
    await world.users.enable(world.ctx, "alice", actor_id="admin")
    await world.users.admit(world.ctx, principal("alice"))
    assert [d["status"] for d in world.published.of("core.user.updated")] == ["disabled", "active"]


async def test_a_removal_racing_an_admission_still_refuses_the_next_request(world: World) -> None:
    await world.enrol("alice", "admin")
    key, generation_key = user_cache_keys(world.ctx, "alice")
    await world.users.stamps.invalidate(generation_key, key)
    before = await world.users.stamps.read(key, generation_key)  # an admission misses...
    await world.users.remove(world.ctx, "alice", actor_id="admin")  # ...the removal commits...
    fingerprint = users_module._fingerprint(("alice", None, None))
    await world.users.stamps.write(key, before.generation, b"active:" + fingerprint)  # ...its stale write lands
    with pytest.raises(UserDisabledError):
        await world.users.admit(world.ctx, principal("alice"))


async def test_removal_drops_team_and_workspace_memberships(world: World) -> None:
    await world.enrol("alice", "bob", "admin")
    team = await world.teams.create(world.ctx, name="Core", created_by="admin")
    await world.teams.add_member(world.ctx, team.id, "alice")
    ws = await world.workspaces.create(world.ctx, Actor(user_id="bob", can_create=True), name="Shared")
    await world.workspaces.add_member(world.ctx, Actor(user_id="bob"), ws.id, "alice", "member")

    removal = await world.users.remove(world.ctx, "alice", actor_id="admin")
    assert (removal.user.status, removal.teams, removal.workspaces) == ("removed", (team.id,), ((ws.id, "member"),))
    assert (await world.teams.get(world.ctx, team.id)).member_count == 0
    with pytest.raises(UserDisabledError):
        await world.users.admit(world.ctx, principal("alice"))
    assert world.published.of("core.workspace.member.removed") == [
        {"workspace_id": ws.id, "user_id": "alice", "role": "member"}
    ]
    again = await world.users.remove(world.ctx, "alice", actor_id="admin")
    assert again.teams == () and len(world.published.of("core.user.removed")) == 1
    with pytest.raises(ValidationError):
        await world.teams.add_member(world.ctx, team.id, "alice")  # only active users join


async def test_status_changes_refuse_oneself_and_unknown_users(world: World) -> None:
    await world.enrol("admin")
    with pytest.raises(ConflictError):
        await world.users.remove(world.ctx, "admin", actor_id="admin")
    with pytest.raises(ConflictError):
        await world.users.disable(world.ctx, "admin", actor_id="admin")
    with pytest.raises(NotFoundError):
        await world.users.remove(world.ctx, "ghost", actor_id="admin")
    with pytest.raises(NotFoundError):
        await world.users.get(world.ctx, "ghost")


async def test_profiles_page_by_username_and_filter_by_status(world: World) -> None:
    await world.enrol("dina", "bert", "carl", "admin")
    await world.users.disable(world.ctx, "carl", actor_id="admin")
    first = await world.users.list(world.ctx, limit=3)
    rest = await world.users.list(world.ctx, limit=3, cursor=first.next_cursor)
    assert [u.id for u in first.items + rest.items] == ["admin", "bert", "carl", "dina"]
    assert rest.next_cursor is None
    assert [u.id for u in (await world.users.list(world.ctx, status="disabled")).items] == ["carl"]
    with pytest.raises(ValidationError):
        await world.users.list(world.ctx, status="gone")
