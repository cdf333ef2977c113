"""Core API: a tenant's teams and their members, under ``/api/core/v1/teams``.

Reading needs ``core:team:read``; creating, changing and deleting teams and their members needs
``core:team:manage``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from plexica.http.guards import json_body, patch_body
from plexica.http.routes._people import PAGING, as_json, page_json, paging, tenant_user
from plexica.http.schemas.people import AddTeamMember, CreateTeam, TeamMemberPage, TeamPage, UpdateTeam
from plexica.http.services import services_of
from plexica.identity.models import Team, TeamMember
from plexica_sdk.schema import api

__all__ = ["routes"]

READ = "core:team:read"
MANAGE = "core:team:manage"


def _team_json(team: Team) -> dict[str, Any]:
    return as_json(team)


def _member_json(member: TeamMember) -> dict[str, Any]:
    return as_json(member)


@api(response=TeamPage, query=PAGING)
async def list_teams(request: Request) -> JSONResponse:
    ctx, _ = await tenant_user(request, READ)
    cursor, limit = paging(request)
    return JSONResponse(page_json(await services_of(request).teams.list(ctx, cursor=cursor, limit=limit), _team_json))


@api(request=CreateTeam, response=Team, status=201, errors=(409,), response_headers=("Location",))
async def create_team(request: Request) -> JSONResponse:
    ctx, principal = await tenant_user(request, MANAGE)
    body = await json_body(request, CreateTeam)
    team = await services_of(request).teams.create(
        ctx, name=body.name, description=body.description, created_by=principal.id
    )
    return JSONResponse(_team_json(team), status_code=201, headers={"Location": f"{request.url.path}/{team.id}"})


@api(response=Team)
async def get_team(request: Request) -> JSONResponse:
    ctx, _ = await tenant_user(request, READ)
    return JSONResponse(_team_json(await services_of(request).teams.get(ctx, request.path_params["team_id"])))


@api(request=UpdateTeam, response=Team, errors=(409,))
async def update_team(request: Request) -> JSONResponse:
    ctx, _ = await tenant_user(request, MANAGE)
    changes = await patch_body(request, UpdateTeam)
    return JSONResponse(
        _team_json(await services_of(request).teams.update(ctx, request.path_params["team_id"], changes))
    )


@api(status=204)
async def delete_team(request: Request) -> Response:
    ctx, _ = await tenant_user(request, MANAGE)
    await services_of(request).teams.delete(ctx, request.path_params["team_id"])
    return Response(status_code=204)


@api(response=TeamMemberPage, query=PAGING)
async def list_team_members(request: Request) -> JSONResponse:
    ctx, _ = await tenant_user(request, READ)
    cursor, limit = paging(request)
    page = await services_of(request).teams.members(ctx, request.path_params["team_id"], cursor=cursor, limit=limit)
    return JSONResponse(page_json(page, _member_json))


@api(request=AddTeamMember, status=201, errors=(409,), response_headers=("Location",))
async def add_team_member(request: Request) -> Response:
    ctx, _ = await tenant_user(request, MANAGE)
    user_id = (await json_body(request, AddTeamMember)).user_id
    await services_of(request).teams.add_member(ctx, request.path_params["team_id"], user_id)
    return Response(status_code=201, headers={"Location": f"{request.url.path}/{user_id}"})


@api(status=204)
async def remove_team_member(request: Request) -> Response:
    ctx, _ = await tenant_user(request, MANAGE)
    await services_of(request).teams.remove_member(ctx, request.path_params["team_id"], request.path_params["user_id"])
    return Response(status_code=204)


routes = [
    Route("/teams", list_teams, methods=["GET"]),
    Route("/teams", create_team, methods=["POST"]),
    Route("/teams/{team_id}", get_team, methods=["GET"]),
    Route("/teams/{team_id}", update_team, methods=["PATCH"]),
    Route("/teams/{team_id}", delete_team, methods=["DELETE"]),
    Route("/teams/{team_id}/members", list_team_members, methods=["GET"]),
    Route("/teams/{team_id}/members", add_team_member, methods=["POST"]),
    Route("/teams/{team_id}/members/{user_id}", remove_team_member, methods=["DELETE"]),
]
