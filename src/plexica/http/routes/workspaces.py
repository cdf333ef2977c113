"""Core API: workspaces and their members, under ``/api/core/v1/workspaces``.

Every route needs a user of the addressed tenant holding ``core:workspace:read``; creating needs
``core:workspace:create``. What a caller may do to one workspace then depends on their role in it
(see :mod:`plexica.workspaces.service`): a workspace they are not a member of does not exist for
them (404) unless they hold ``core:workspace:manage``.

Versions: responses carry ``ETag: "<version>"``. ``PATCH`` requires ``If-Match`` (428 without
it, 409 when stale; ``*`` skips the check); archive, restore and move check it when sent.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from plexica.http.guards import json_body, patch_body
from plexica.http.problems import PreconditionRequiredError
from plexica.http.routes._people import PAGING, allowed, page_json, paging, tenant_user
from plexica.http.schemas.workspaces import (
    AddMember,
    CreateWorkspace,
    MemberPage,
    MoveWorkspace,
    UpdateMember,
    UpdateWorkspace,
    WorkspaceOut,
    WorkspacePage,
)
from plexica.http.services import services_of
from plexica.workspaces.models import Actor, Member, Workspace
from plexica_sdk.converter import unstructure
from plexica_sdk.errors import ValidationError
from plexica_sdk.schema import Header, Query, api
from plexica_sdk.types import TenantContext

__all__ = ["routes"]

READ = "core:workspace:read"
CREATE = "core:workspace:create"
MANAGE = "core:workspace:manage"


async def _actor(request: Request, permission: str = READ) -> tuple[TenantContext, Actor]:
    ctx, principal = await tenant_user(request, permission)
    actor = Actor(
        user_id=principal.id,
        manage_all=await allowed(request, ctx, MANAGE),
        can_create=await allowed(request, ctx, CREATE),
    )
    return ctx, actor


def _if_match(request: Request, *, required: bool) -> int | None:
    """The version ``If-Match`` names (``None``: absent and optional, or ``*``)."""
    raw = request.headers.get("if-match")
    if raw is None:
        if required:
            raise PreconditionRequiredError("If-Match")
        return None
    value = raw.strip()
    if value == "*":
        return None
    value = value.removeprefix("W/").strip('"')
    if not value.isdigit() or len(value) > 9:
        raise ValidationError('If-Match must be a version like "3", or *', field="If-Match")
    return int(value)


_IF_MATCH_SCHEMA = {"type": "string", "pattern": r'^(\*|(W/)?"?[0-9]{1,9}"?)$'}
IF_MATCH = Header(name="If-Match", schema=_IF_MATCH_SCHEMA, required=True, description='the ETag: "3", or *')
IF_MATCH_OPTIONAL = Header(name="If-Match", schema=_IF_MATCH_SCHEMA, description='the ETag: "3", or *')
_LIST_QUERY = (
    *PAGING,
    Query(name="parent_id", description="a workspace id, or root"),
    Query.choice("status", ["active", "archived", "all"], description="default active"),
    Query(name="mine", schema={"type": "string"}, description="true: only the caller's"),
)


def _workspace_json(workspace: Workspace) -> dict[str, Any]:
    out = WorkspaceOut(
        id=workspace.id,
        name=workspace.name,
        slug=workspace.slug,
        description=workspace.description,
        parent_id=workspace.parent_id,
        ancestor_ids=tuple(workspace.ancestor_ids),
        depth=workspace.depth,
        status=workspace.status,
        version=workspace.version,
        role=workspace.role,
        created_by=workspace.created_by,
        created_at=workspace.created_at,
        updated_at=workspace.updated_at,
        archived_at=workspace.archived_at,
    )
    return unstructure(out)  # type: ignore[no-any-return]


def _member_json(member: Member) -> dict[str, Any]:
    return unstructure(member)  # type: ignore[no-any-return]


def _respond(workspace: Workspace, status_code: int = 200, **headers: str) -> JSONResponse:
    return JSONResponse(
        _workspace_json(workspace), status_code=status_code, headers={"ETag": f'"{workspace.version}"', **headers}
    )


@api(request=CreateWorkspace, response=WorkspaceOut, status=201, errors=(409,), response_headers=("ETag", "Location"))
async def create_workspace(request: Request) -> JSONResponse:
    """Create a workspace (a root, or under ``parent_id``); the caller becomes its admin."""
    ctx, actor = await _actor(request, CREATE)
    body = await json_body(request, CreateWorkspace)
    workspace = await services_of(request).workspaces.create(
        ctx, actor, name=body.name, slug=body.slug, description=body.description, parent_id=body.parent_id
    )
    return _respond(workspace, 201, Location=f"{request.url.path}/{workspace.id}")


@api(response=WorkspacePage, query=_LIST_QUERY)
async def list_workspaces(request: Request) -> JSONResponse:
    """The caller's workspaces by name (every workspace with ``core:workspace:manage``), paginated.

    Query: ``limit`` (1-200, default 50), ``cursor`` (from ``next_cursor``), ``parent_id`` (an id,
    or ``root``), ``status`` (``active`` default, ``archived``, ``all``), ``mine=true``.
    """
    ctx, actor = await _actor(request)
    cursor, limit = paging(request)
    params = request.query_params
    page = await services_of(request).workspaces.list(
        ctx,
        actor,
        parent=params.get("parent_id") or None,
        status=params.get("status") or "active",
        mine=params.get("mine", "").lower() in ("1", "true", "yes"),
        cursor=cursor,
        limit=limit,
    )
    return JSONResponse(page_json(page, _workspace_json))


@api(response=WorkspaceOut, response_headers=("ETag",))
async def get_workspace(request: Request) -> JSONResponse:
    """One workspace (404 unless the caller is a member or holds ``core:workspace:manage``)."""
    ctx, actor = await _actor(request)
    return _respond(await services_of(request).workspaces.get(ctx, actor, request.path_params["workspace_id"]))


@api(request=UpdateWorkspace, response=WorkspaceOut, headers=(IF_MATCH,), errors=(409, 428), response_headers=("ETag",))
async def update_workspace(request: Request) -> JSONResponse:
    """Change name, slug or description (workspace admins; ``If-Match`` required)."""
    ctx, actor = await _actor(request)
    version = _if_match(request, required=True)
    changes = await patch_body(request, UpdateWorkspace)
    workspace = await services_of(request).workspaces.update(
        ctx, actor, request.path_params["workspace_id"], changes, version=version
    )
    return _respond(workspace)


@api(response=WorkspaceOut, headers=(IF_MATCH_OPTIONAL,), errors=(409,), response_headers=("ETag",))
async def archive_workspace(request: Request) -> JSONResponse:
    """Archive a workspace and all its descendants (workspace admins)."""
    ctx, actor = await _actor(request)
    workspace = await services_of(request).workspaces.archive(
        ctx, actor, request.path_params["workspace_id"], version=_if_match(request, required=False)
    )
    return _respond(workspace)


@api(response=WorkspaceOut, headers=(IF_MATCH_OPTIONAL,), errors=(409,), response_headers=("ETag",))
async def restore_workspace(request: Request) -> JSONResponse:
    """Restore an archived workspace and the descendants archived with it (workspace admins)."""
    ctx, actor = await _actor(request)
    workspace = await services_of(request).workspaces.restore(
        ctx, actor, request.path_params["workspace_id"], version=_if_match(request, required=False)
    )
    return _respond(workspace)


@api(
    request=MoveWorkspace,
    response=WorkspaceOut,
    headers=(IF_MATCH_OPTIONAL,),
    errors=(409,),
    response_headers=("ETag",),
)
async def move_workspace(request: Request) -> JSONResponse:
    """Move a workspace with its subtree under ``parent_id`` (``null``: make it a root)."""
    ctx, actor = await _actor(request)
    body = await json_body(request, MoveWorkspace)
    workspace = await services_of(request).workspaces.move(
        ctx, actor, request.path_params["workspace_id"], body.parent_id, version=_if_match(request, required=False)
    )
    return _respond(workspace)


@api(response=MemberPage, query=PAGING)
async def list_members(request: Request) -> JSONResponse:
    """A workspace's members by user id, paginated."""
    ctx, actor = await _actor(request)
    cursor, limit = paging(request)
    page = await services_of(request).workspaces.members(
        ctx, actor, request.path_params["workspace_id"], cursor=cursor, limit=limit
    )
    return JSONResponse(page_json(page, _member_json))


@api(request=AddMember, response=Member, status=201, errors=(409,), response_headers=("Location",))
async def add_member(request: Request) -> JSONResponse:
    """Add a user with a role (``admin``, ``member``, ``viewer``; default ``member``)."""
    ctx, actor = await _actor(request)
    body = await json_body(request, AddMember)
    member = await services_of(request).workspaces.add_member(
        ctx, actor, request.path_params["workspace_id"], body.user_id, body.role
    )
    return JSONResponse(
        _member_json(member), status_code=201, headers={"Location": f"{request.url.path}/{member.user_id}"}
    )


@api(request=UpdateMember, response=Member, errors=(409,))
async def update_member(request: Request) -> JSONResponse:
    """Change a member's role; the last admin cannot be demoted (409)."""
    ctx, actor = await _actor(request)
    body = await json_body(request, UpdateMember)
    member = await services_of(request).workspaces.set_role(
        ctx, actor, request.path_params["workspace_id"], request.path_params["user_id"], body.role
    )
    return JSONResponse(_member_json(member))


@api(status=204, errors=(409,))
async def remove_member(request: Request) -> Response:
    """Remove a member (or leave); the last admin cannot be removed (409)."""
    ctx, actor = await _actor(request)
    await services_of(request).workspaces.remove_member(
        ctx, actor, request.path_params["workspace_id"], request.path_params["user_id"]
    )
    return Response(status_code=204)


routes = [
    Route("/workspaces", create_workspace, methods=["POST"]),
    Route("/workspaces", list_workspaces, methods=["GET"]),
    Route("/workspaces/{workspace_id}", get_workspace, methods=["GET"]),
    Route("/workspaces/{workspace_id}", update_workspace, methods=["PATCH"]),
    Route("/workspaces/{workspace_id}/archive", archive_workspace, methods=["POST"]),
    Route("/workspaces/{workspace_id}/restore", restore_workspace, methods=["POST"]),
    Route("/workspaces/{workspace_id}/move", move_workspace, methods=["POST"]),
    Route("/workspaces/{workspace_id}/members", list_members, methods=["GET"]),
    Route("/workspaces/{workspace_id}/members", add_member, methods=["POST"]),
    Route("/workspaces/{workspace_id}/members/{user_id}", update_member, methods=["PATCH"]),
    Route("/workspaces/{workspace_id}/members/{user_id}", remove_member, methods=["DELETE"]),
]
