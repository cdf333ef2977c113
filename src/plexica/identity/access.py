"""The seam through which people changes reach the permission engine's caches."""

from __future__ import annotations

from typing import Protocol

from plexica_sdk.types import TenantContext

__all__ = ["AccessInvalidator"]


class AccessInvalidator(Protocol):
    """Told after a committed change that alters who holds which permissions.

    Team memberships, workspace memberships and user removal all change a user's effective
    permissions; without this call the permission cache would keep serving the old answer.
    """

    async def invalidate_user(self, ctx: TenantContext, user_id: str) -> None: ...

    async def invalidate_tenant(self, ctx: TenantContext) -> None: ...
