"""Teams on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from plexica_sdk.errors import ConflictError, NotFoundError, ValidationError
from tests.plexica.identity.support import World

pytestmark = pytest.mark.anyio


async def test_team_names_are_unique_regardless_of_case_even_when_creates_race(world: World) -> None:
    results = await asyncio.gather(
        *(world.teams.create(world.ctx, name=name, created_by="a") for name in ("Ops", "oPS")), return_exceptions=True
    )
    assert sorted(type(r).__name__ for r in results) == ["ConflictError", "Team"]
    with pytest.raises(ConflictError):
        await world.teams.create(world.ctx, name="OPS", created_by="a")


async def test_teams_change_list_and_go(world: World) -> None:
    await world.enrol("alice", "bob")
    a = await world.teams.create(world.ctx, name="A team", description="first", created_by="alice")
    b = await world.teams.create(world.ctx, name="B team", created_by="alice")
    await world.teams.add_member(world.ctx, a.id, "bob")
    await world.teams.add_member(world.ctx, a.id, "alice")
    with pytest.raises(ConflictError):
        await world.teams.add_member(world.ctx, a.id, "bob")
    first = await world.teams.list(world.ctx, limit=1)
    second = await world.teams.list(world.ctx, limit=1, cursor=first.next_cursor)
    assert [(t.name, t.member_count) for t in first.items + second.items] == [("A team", 2), ("B team", 0)]
    members = await world.teams.members(world.ctx, a.id)
    assert [(m.user_id, m.username) for m in members.items] == [("alice", "alice"), ("bob", "bob")]

    with pytest.raises(ConflictError):
        await world.teams.update(world.ctx, b.id, {"name": "a TEAM"})
    with pytest.raises(ValidationError):
        await world.teams.update(world.ctx, b.id, {"owner": "me"})
    renamed = await world.teams.update(world.ctx, b.id, {"name": "Bees", "description": None})
    assert (renamed.name, renamed.description) == ("Bees", None)

    await world.teams.delete(world.ctx, a.id)
    for call in (
        world.teams.get(world.ctx, a.id),
        world.teams.delete(world.ctx, a.id),
        world.teams.members(world.ctx, a.id),
        world.teams.add_member(world.ctx, a.id, "bob"),
        world.teams.remove_member(world.ctx, b.id, "bob"),
    ):
        with pytest.raises(NotFoundError):
            await call
