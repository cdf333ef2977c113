"""Core API: a tenant's users (``/api/core/v1/users``) and the platform's super-admins (``/super-admins``).

Profiles are created by a user's first request (see :mod:`plexica.http.user_middleware`); here
they are listed, read, disabled, enabled and removed. Reading needs ``core:user:read``, changing
``core:user:manage``. The super-admin allow-list is managed by super-admins only.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from plexica.http.guards import json_body, require_super_admin
from plexica.http.routes._people import PAGING, as_json, iso, page_json, paging, tenant_user
from plexica.http.schemas.people import GrantSuperAdmin, SuperAdminList, UserPage
from plexica.http.services import services_of
from plexica.identity.models import SuperAdmin, UserProfile
from plexica_sdk.schema import Query, api

__all__ = ["routes"]

READ = "core:user:read"
MANAGE = "core:user:manage"


def _user_json(user: UserProfile) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "display_name": user.display_name,
        "status": user.status,
        "created_at": iso(user.created_at),
        "last_seen_at": iso(user.last_seen_at),
        "updated_at": iso(user.updated_at),
        "removed_at": iso(user.removed_at),
    }


def _super_admin_json(entry: SuperAdmin) -> dict[str, Any]:
    return as_json(entry)


_STATUS = Query.choice("status", ["active", "disabled", "removed"], description="only users in it")


@api(response=UserPage, query=(*PAGING, _STATUS))
async def list_users(request: Request) -> JSONResponse:
    """The tenant's users by username, paginated; ``status`` filters (``active``, ``disabled``, ``removed``)."""
    ctx, _ = await tenant_user(request, READ)
    cursor, limit = paging(request)
    page = await services_of(request).users.list(
        ctx, status=request.query_params.get("status") or None, cursor=cursor, limit=limit
    )
    return JSONResponse(page_json(page, _user_json))


@api(response=UserProfile)
async def get_user(request: Request) -> JSONResponse:
    ctx, _ = await tenant_user(request, READ)
    return JSONResponse(_user_json(await services_of(request).users.get(ctx, request.path_params["user_id"])))


@api(response=UserProfile, errors=(409,))
async def disable_user(request: Request) -> JSONResponse:
    """Refuse a user from their next request on; memberships stay."""
    ctx, principal = await tenant_user(request, MANAGE)
    user = await services_of(request).users.disable(ctx, request.path_params["user_id"], actor_id=principal.id)
    return JSONResponse(_user_json(user))


@api(response=UserProfile, errors=(409,))
async def enable_user(request: Request) -> JSONResponse:
    """Let a disabled or removed user in again (a removed one has no memberships left)."""
    ctx, principal = await tenant_user(request, MANAGE)
    user = await services_of(request).users.enable(ctx, request.path_params["user_id"], actor_id=principal.id)
    return JSONResponse(_user_json(user))


@api(status=204, errors=(409,))
async def remove_user(request: Request) -> Response:
    """Remove a user: disabled at once, every team and workspace membership dropped."""
    ctx, principal = await tenant_user(request, MANAGE)
    await services_of(request).users.remove(ctx, request.path_params["user_id"], actor_id=principal.id)
    return Response(status_code=204)


@api(response=SuperAdminList)
async def list_super_admins(request: Request) -> JSONResponse:
    require_super_admin(request)
    entries = await services_of(request).super_admins.list()
    return JSONResponse({"items": [_super_admin_json(entry) for entry in entries]})


@api(request=GrantSuperAdmin, response=SuperAdmin, status=201, errors=(409,), response_headers=("Location",))
async def grant_super_admin(request: Request) -> JSONResponse:
    """Put a platform-realm user on the allow-list (the first entry must be the caller)."""
    principal = require_super_admin(request)
    body = await json_body(request, GrantSuperAdmin)
    entry = await services_of(request).super_admins.grant(body.user_id, username=body.username, granted_by=principal)
    return JSONResponse(
        _super_admin_json(entry), status_code=201, headers={"Location": f"{request.url.path}/{entry.user_id}"}
    )


@api(status=204, errors=(409,))
async def revoke_super_admin(request: Request) -> Response:
    """Take a user off the allow-list (never the last one)."""
    principal = require_super_admin(request)
    await services_of(request).super_admins.revoke(request.path_params["user_id"], revoked_by=principal)
    return Response(status_code=204)


routes = [
    Route("/users", list_users, methods=["GET"]),
    Route("/users/{user_id}", get_user, methods=["GET"]),
    Route("/users/{user_id}", remove_user, methods=["DELETE"]),
    Route("/users/{user_id}/disable", disable_user, methods=["POST"]),
    Route("/users/{user_id}/enable", enable_user, methods=["POST"]),
    Route("/super-admins", list_super_admins, methods=["GET"]),
    Route("/super-admins", grant_super_admin, methods=["POST"]),
    Route("/super-admins/{user_id}", revoke_super_admin, methods=["DELETE"]),
]
