"""The super-admin allow-list on SQLite and PostgreSQL."""

from __future__ import annotations

import attrs
import pytest

from plexica_sdk.errors import ConflictError, NotFoundError, ValidationError
from plexica_sdk.types import Principal
from tests.plexica.identity.support import World

pytestmark = pytest.mark.anyio


def platform(user_id: str, *, role: bool = True) -> Principal:
    return Principal(id=user_id, is_super_admin=role, roles=("super_admin",) if role else ())


async def test_an_empty_list_trusts_the_role_alone_and_the_first_grant_is_the_callers(world: World) -> None:
    service = world.super_admins
    assert await service.allows(platform("root"))
    assert not await service.allows(platform("root", role=False))
    with pytest.raises(ConflictError):
        await service.grant("eve", granted_by=platform("root"))
    entry = await service.grant("root", username="root", granted_by=platform("root"))
    assert (entry.user_id, entry.username) == ("root", "root")
    assert await service.allows(platform("root"))
    assert not await service.allows(platform("eve"))


async def test_grants_and_revocations_take_effect_at_once(world: World) -> None:
    service = world.super_admins
    root = platform("root")
    await service.grant("root", granted_by=root)
    assert not await service.allows(platform("eve"))  # cached now
    await service.grant("eve", granted_by=root)
    assert await service.allows(platform("eve"))
    assert [e.user_id for e in await service.list()] == ["eve", "root"]
    await service.revoke("eve", revoked_by=root)
    assert not await service.allows(platform("eve"))
    with pytest.raises(NotFoundError):
        await service.revoke("eve", revoked_by=root)
    with pytest.raises(ConflictError):
        await service.revoke("root", revoked_by=root)  # never the last one
    with pytest.raises(ConflictError):
        await service.grant("root", granted_by=root)  # already listed


@pytest.mark.parametrize(
    ("user_id", "username", "field"),
    [("", None, "user_id"), (7, None, "user_id"), ("x" * 256, None, "user_id"), ("ok", 5, "username")],
    ids=["empty", "not-a-string", "too-long", "bad-username"],
)
async def test_bad_grants_are_422(world: World, user_id: object, username: object, field: str) -> None:
    with pytest.raises(ValidationError) as error:
        await world.super_admins.grant(user_id, username=username, granted_by=platform("root"))
    assert error.value.field == field


async def test_a_principal_without_the_platform_role_is_never_allowed(world: World) -> None:
    await world.super_admins.grant("root", granted_by=platform("root"))
    listed_but_no_role = attrs.evolve(platform("root"), is_super_admin=False)
    assert not await world.super_admins.allows(listed_but_no_role)
