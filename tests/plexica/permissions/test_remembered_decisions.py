"""Policy-free decisions remembered across requests on the process L1: fast, and never stale."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from plexica.cache import LayeredCache, MemoryCache
from plexica.permissions import PermissionEngine, PermissionService
from plexica.permissions.decision import Subject
from tests.plexica.permissions.conftest import MakeEngine, MakeTenant

pytestmark = pytest.mark.anyio


@pytest.fixture
async def local() -> AsyncIterator[LayeredCache]:
    async with LayeredCache(MemoryCache()) as layered:
        yield layered


@pytest.fixture
def l1_engine(make_engine: MakeEngine, local: LayeredCache) -> PermissionEngine:
    return make_engine(local=local)


async def test_a_second_request_reuses_the_decision_without_building_a_subject(
    l1_engine: PermissionEngine, make_tenant: MakeTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await make_tenant()
    first = await l1_engine.authorize(tenant.request("ann", roles=["member"]), "tasks:task:read")
    assert first.allowed and first.decided_by == "role:member"
    built: list[str] = []
    original = Subject.__init__

    def counting(self: Subject, *args: object, **kwargs: object) -> None:
        built.append("subject")
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Subject, "__init__", counting)
    again = await l1_engine.authorize(tenant.request("ann", roles=["member"]), "tasks:task:read")
    assert again == first
    assert built == []
    # Other token roles, another workspace or another permission are decided on their own.
    assert not (await l1_engine.authorize(tenant.request("ann"), "tasks:task:read")).allowed
    assert built == ["subject"]


async def test_a_grant_or_revocation_applies_to_the_next_request(
    l1_engine: PermissionEngine, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    service = PermissionService(tenant.db, l1_engine)
    assert not (await l1_engine.authorize(tenant.request("ann"), "tasks:task:write")).allowed
    await service.grant(tenant.ctx, "tasks-editor", user_id="ann")
    assert (await l1_engine.authorize(tenant.request("ann"), "tasks:task:write")).decided_by == "role:tasks-editor"
    await service.revoke(tenant.ctx, "tasks-editor", user_id="ann")
    assert not (await l1_engine.authorize(tenant.request("ann"), "tasks:task:write")).allowed


async def test_a_check_a_policy_applies_to_is_decided_per_request(
    l1_engine: PermissionEngine, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    # tasks:task:write has the authors-edit-own policy: never remembered, always the request's resource.
    member = tenant.request("ann", roles=["member"])
    assert (await l1_engine.authorize(member, "tasks:task:write", {"author_id": "ann"})).allowed
    assert not (await l1_engine.authorize(tenant.request("ann", roles=["member"]), "tasks:task:write")).allowed
    assert not l1_engine._decisions or all(key[-1] != "tasks:task:write" for key in l1_engine._decisions)
