"""The tenant context: set by edges, read by tenant-scoped code, never leaking between tasks."""

from __future__ import annotations

import asyncio

import pytest

from plexica_sdk import context
from plexica_sdk.errors import TenantContextMissingError
from plexica_sdk.types import TenantContext

pytestmark = pytest.mark.anyio

ACME = TenantContext(tenant_id="t-1", slug="acme", schema="tenant_acme")
GLOBEX = TenantContext(tenant_id="t-2", slug="globex", schema="tenant_globex")


def test_current_raises_outside_any_tenant() -> None:
    with pytest.raises(TenantContextMissingError, match="this operation needs a tenant context"):
        context.current()


def test_current_error_says_what_needed_the_tenant() -> None:
    with pytest.raises(TenantContextMissingError, match="loading notes needs a tenant context"):
        context.current("loading notes")


def test_get_returns_none_outside_any_tenant() -> None:
    assert context.get() is None


def test_use_sets_the_context_and_restores_none_afterwards() -> None:
    with context.use(ACME) as entered:
        assert entered is ACME
        assert context.current() is ACME
        assert context.get() is ACME
    assert context.get() is None


def test_nested_use_restores_the_outer_tenant() -> None:
    with context.use(ACME):
        with context.use(GLOBEX):
            assert context.current() is GLOBEX
        assert context.current() is ACME
    assert context.get() is None


def test_use_restores_the_previous_context_even_when_the_block_raises() -> None:
    with context.use(ACME):
        with pytest.raises(RuntimeError, match="boom"), context.use(GLOBEX):
            raise RuntimeError("boom")
        assert context.current() is ACME
    assert context.get() is None


def test_the_sdk_package_exports_current() -> None:
    import plexica_sdk

    with context.use(ACME):
        assert plexica_sdk.current() is ACME


async def test_concurrent_tasks_each_keep_their_own_tenant() -> None:
    both_inside = asyncio.Barrier(2)

    async def work(ctx: TenantContext) -> list[str]:
        seen = []
        with context.use(ctx):
            await both_inside.wait()  # both tasks are inside their own `use` at the same time
            for _ in range(3):
                seen.append(context.current().slug)
                await asyncio.sleep(0)
        return seen

    acme, globex = await asyncio.gather(work(ACME), work(GLOBEX))
    assert acme == ["acme"] * 3
    assert globex == ["globex"] * 3
    assert context.get() is None


async def test_a_task_inherits_the_context_it_was_created_in_and_cannot_change_its_parents() -> None:
    async def child() -> str:
        inherited = context.current().slug
        context.tenant_context.set(GLOBEX)  # only this task's copy of the context changes
        return inherited

    with context.use(ACME):
        assert await asyncio.create_task(child()) == "acme"
        assert context.current() is ACME


async def test_a_task_created_outside_any_tenant_sees_none() -> None:
    async def child() -> TenantContext | None:
        return context.get()

    task = asyncio.create_task(child())
    with context.use(ACME):
        assert await task is None
