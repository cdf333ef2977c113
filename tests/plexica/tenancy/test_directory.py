"""The tenant directory's cache: what another process changes is seen, a tenant in provisioning never kept."""

from __future__ import annotations

import uuid

import pytest

from plexica.tenancy.repository import TenantRepository
from tests.plexica.db.support import MakePlatform

pytestmark = pytest.mark.anyio


async def test_a_tenant_another_process_is_provisioning_is_served_once_it_is_active(
    make_platform: MakePlatform,
) -> None:
    serving, cli = await make_platform(), await make_platform()  # two processes: two in-process caches
    repo, slug = TenantRepository(), f"t{uuid.uuid4().hex[:10]}"
    async with cli.db.core_connection() as conn:
        row = await repo.insert(
            conn, tenant_id=str(uuid.uuid4()), slug=slug, name=slug, plan="standard", schema=f"tenant_{slug}"
        )
    assert (await serving.directory.get(slug)).status == "provisioning"  # a request arriving mid-way

    async with cli.db.core_connection() as conn:
        await repo.set_status(conn, row, "active")

    # No invalidation reaches the serving process's in-process cache, and it kept nothing.
    assert (await serving.directory.get(slug)).status == "active"
    assert (await serving.directory.get(slug)).status == "active"  # and the settled state is cached
