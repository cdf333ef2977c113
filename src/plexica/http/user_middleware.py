"""The people stage of the request path, right after tenant resolution (pure ASGI).

For each request with a verified token it:

1. narrows super-admins to the allow-list: a platform token with the ``super_admin`` role whose
   subject is not on ``core.super_admins`` (while that list is not empty) is treated as an
   ordinary caller (see :mod:`plexica.identity.super_admins`);
   then admits to the addressed tenant only a principal its own issuer vouched for, or a listed
   super-admin, stripped of its token's roles; any other platform principal gets 404, as for a
   tenant that does not exist (``docs/identity.md``, "Admission");
2. admits a tenant's user: creates their profile on their first request, refreshes it when their
   claims change, and refuses a disabled or removed user with 403 even while the token is valid
   (see :meth:`plexica.identity.users.UserService.admit`; cached, so no database write per request);
3. checks ``X-Workspace-ID``: the caller must be a member of that workspace, or hold
   ``core:workspace:manage``; otherwise 404, as if it did not exist. An archived workspace may be
   selected for reading (``GET``, ``HEAD``, ``OPTIONS``) only: other methods get 409, except on the
   core API, whose workspace routes apply their own rules (restoring it, for one).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import attrs
from starlette.types import ASGIApp, Receive, Scope, Send

from plexica.http.scope import request_state
from plexica_sdk import context
from plexica_sdk.errors import AuthenticationError, ConflictError, NotFoundError, TenantNotFoundError
from plexica_sdk.types import Principal, TenantContext

if TYPE_CHECKING:
    from plexica.http.services import Authorizer
    from plexica.identity.super_admins import SuperAdminService
    from plexica.identity.users import UserService
    from plexica.workspaces.service import WorkspaceService

__all__ = ["UserMiddleware"]

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CORE_API = "/api/core/"


def _route_path(scope: Scope) -> str:
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _workspace_not_found() -> NotFoundError:
    return NotFoundError("no such workspace", resource="workspace")


class UserMiddleware:
    """Super-admin allow-list, user admission and workspace selection; see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        super_admins: SuperAdminService,
        users: UserService,
        workspaces: WorkspaceService,
        authorizer: Authorizer,
    ) -> None:
        self.app = app
        self.super_admins = super_admins
        self.users = users
        self.workspaces = workspaces
        self.authorizer = authorizer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        state = request_state(scope)
        principal: Principal | None = state.principal
        ctx = context.get()
        if principal is None:
            if ctx is not None and ctx.workspace_id is not None:
                raise AuthenticationError("a bearer token is required to select a workspace")
            return await self.app(scope, receive, send)

        if principal.is_super_admin and not await self.super_admins.allows(principal):
            principal = attrs.evolve(principal, is_super_admin=False)
            state.principal = principal
            if ctx is not None:
                ctx = attrs.evolve(ctx, user=principal)
        if ctx is None:
            return await self.app(scope, receive, send)

        if principal.tenant_slug == ctx.slug:
            await self.users.admit(ctx, principal)
        else:
            # Not issued for this tenant (a platform principal: a token for another tenant never
            # gets this far). Only a listed super-admin is admitted, and without its token's roles.
            if not principal.is_super_admin:
                raise TenantNotFoundError(ctx.slug)
            if principal.roles:
                principal = attrs.evolve(principal, roles=())
                state.principal = principal
                ctx = attrs.evolve(ctx, user=principal)
        if ctx.workspace_id is not None:
            await self._check_workspace(scope, ctx, principal)
        if ctx is context.get():
            return await self.app(scope, receive, send)
        with context.use(ctx):
            await self.app(scope, receive, send)

    async def _check_workspace(self, scope: Scope, ctx: TenantContext, principal: Principal) -> None:
        workspace_id = ctx.workspace_id
        assert workspace_id is not None
        try:
            canonical = str(uuid.UUID(workspace_id)) == workspace_id
        except ValueError:
            canonical = False
        if not canonical or principal.tenant_slug != ctx.slug:
            raise _workspace_not_found()
        selection = await self.workspaces.selection(ctx, workspace_id, principal.id)
        if selection is None:
            raise _workspace_not_found()
        if selection.role is None and not await self._manages_all(ctx):
            raise _workspace_not_found()
        if (
            selection.status != "active"
            and scope["method"] not in _READ_METHODS
            and not _route_path(scope).startswith(_CORE_API)
        ):
            raise ConflictError("the selected workspace is archived (read-only)", resource="workspace")

    async def _manages_all(self, ctx: TenantContext) -> bool:
        decision = await self.authorizer.authorize(ctx, "core:workspace:manage")
        return decision.allowed
