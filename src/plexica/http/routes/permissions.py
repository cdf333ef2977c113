"""Core API: permission checks and explanations, roles and grants, ABAC policies.

Anyone may check or explain their own permissions; asking about another user needs
``core:permission:inspect`` (tenant admins hold it). Changing roles, grants and policies needs
``core:role:*`` and ``core:policy:*``. Validation errors are 422s naming the offending field.
"""

from __future__ import annotations

from typing import Any

import attrs
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from plexica.http.guards import json_body, require_permission, require_tenant
from plexica.http.schemas.permissions import (
    CheckResult,
    ExplanationOut,
    GrantInput,
    GrantList,
    PermissionQuestion,
    PolicyInput,
    PolicyList,
    PolicyOut,
    PolicyUpdate,
    RoleInput,
    RoleList,
    RoleUpdate,
)
from plexica.http.services import services_of
from plexica.permissions import Explanation, is_permission_key, policy_from_json, policy_to_json
from plexica.permissions.repository import GrantRow, PolicyRow
from plexica.permissions.service import RoleInfo
from plexica_sdk.converter import unstructure
from plexica_sdk.errors import NotFoundError, ValidationError
from plexica_sdk.schema import Query, api
from plexica_sdk.types import TenantContext

__all__ = ["routes"]

INSPECT = "core:permission:inspect"


def _grant_json(grant: GrantRow) -> dict[str, Any]:
    data = attrs.asdict(grant)
    data["created_at"] = grant.created_at.isoformat() if grant.created_at else None
    return data


def _policy_json(row: PolicyRow) -> dict[str, Any]:
    return {
        **policy_to_json(row.policy),
        "source": row.source,
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "updated_at": row.updated_at.isoformat() if row.updated_at else None,
    }


def _explanation_json(explanation: Explanation) -> dict[str, Any]:
    decision = explanation.decision
    return {
        "permission": explanation.permission,
        "user_id": explanation.user_id,
        "workspace_id": explanation.workspace_id,
        "allowed": decision.allowed,
        "reason": decision.reason,
        "decided_by": decision.decided_by,
        "roles": [attrs.asdict(role) for role in explanation.roles],
        "granted_by": list(explanation.granted_by) if explanation.granted_by else None,
        "policies": [attrs.asdict(policy) for policy in explanation.policies],
    }


async def _question(request: Request) -> tuple[TenantContext, str, dict[str, Any] | None, str | None]:
    """``(ctx, permission, resource, user_id)`` of a check or explain request."""
    ctx = require_tenant(request)
    body = await json_body(request, PermissionQuestion)
    permission = body.permission
    if not is_permission_key(permission):
        raise ValidationError("permission must be a key such as notes:note:read", field="permission")
    resource = dict(body.resource) if body.resource is not None else None
    user_id = body.user_id
    if user_id is not None and (ctx.user is None or user_id != ctx.user.id):
        await require_permission(request, INSPECT)
    else:
        user_id = None
    return ctx, permission, resource, user_id


@api(request=PermissionQuestion, response=CheckResult)
async def check(request: Request) -> JSONResponse:
    """Whether the caller (or, for inspectors, ``user_id``) holds ``permission`` on ``resource``."""
    ctx, permission, resource, user_id = await _question(request)
    engine = services_of(request).permissions
    if user_id is None:
        decision = await engine.authorize(ctx, permission, resource)
    else:
        decision = (await engine.explain(ctx, permission, resource, user_id=user_id)).decision
    return JSONResponse({"permission": permission, "allowed": decision.allowed})


@api(request=PermissionQuestion, response=ExplanationOut)
async def explain(request: Request) -> JSONResponse:
    """The decision with its working: roles in effect, the deciding grant or policy, every policy."""
    ctx, permission, resource, user_id = await _question(request)
    explanation = await services_of(request).permissions.explain(ctx, permission, resource, user_id=user_id)
    return JSONResponse(_explanation_json(explanation))


# -------------------------------------------------------------------- roles


@api(response=RoleList)
async def list_roles(request: Request) -> JSONResponse:
    ctx = await require_permission(request, "core:role:read")
    roles = await services_of(request).permission_service.list_roles(ctx)
    return JSONResponse({"items": [attrs.asdict(role) for role in roles]})


@api(response=RoleInfo)
async def get_role(request: Request) -> JSONResponse:
    ctx = await require_permission(request, "core:role:read")
    role = await services_of(request).permission_service.get_role(ctx, request.path_params["name"])
    return JSONResponse(attrs.asdict(role))


@api(request=RoleInput, response=RoleInfo, status=201, errors=(409,), response_headers=("Location",))
async def create_role(request: Request) -> JSONResponse:
    ctx = await require_permission(request, "core:role:write")
    body = await json_body(request, RoleInput)
    role = await services_of(request).permission_service.create_role(ctx, body.name, body.permissions, body.description)
    return JSONResponse(attrs.asdict(role), status_code=201, headers={"Location": f"{request.url.path}/{role.name}"})


@api(request=RoleUpdate, response=RoleInfo, errors=(409,))
async def update_role(request: Request) -> JSONResponse:
    ctx = await require_permission(request, "core:role:write")
    body = await json_body(request, RoleUpdate)
    name = request.path_params["name"]
    if body.name not in (None, name):
        raise ValidationError("the name in the body must match the role's", field="name")
    role = await services_of(request).permission_service.update_role(ctx, name, body.permissions, body.description)
    return JSONResponse(attrs.asdict(role))


@api(status=204, errors=(409,))
async def delete_role(request: Request) -> Response:
    ctx = await require_permission(request, "core:role:write")
    await services_of(request).permission_service.delete_role(ctx, request.path_params["name"])
    return Response(status_code=204)


@api(response=GrantList, query=(Query(name="user_id"), Query(name="team_id")))
async def list_grants(request: Request) -> JSONResponse:
    ctx = await require_permission(request, "core:role:read")
    query = request.query_params
    grants = await services_of(request).permission_service.list_grants(
        ctx, role=request.path_params["name"], user_id=query.get("user_id"), team_id=query.get("team_id")
    )
    return JSONResponse({"items": [_grant_json(grant) for grant in grants]})


@api(request=GrantInput, response=GrantRow, status=201, errors=(409,))
async def grant_role(request: Request) -> JSONResponse:
    ctx = await require_permission(request, "core:role:grant")
    body = await json_body(request, GrantInput)
    grant = await services_of(request).permission_service.grant(
        ctx,
        request.path_params["name"],
        user_id=body.user_id,
        team_id=body.team_id,
        workspace_id=body.workspace_id,
        granted_by=ctx.user.id if ctx.user else None,
    )
    return JSONResponse(_grant_json(grant), status_code=201)


@api(status=204)
async def revoke_grant(request: Request) -> Response:
    ctx = await require_permission(request, "core:role:grant")
    service = services_of(request).permission_service
    grants = await service.list_grants(ctx, role=request.path_params["name"])
    if not any(grant.id == request.path_params["grant_id"] for grant in grants):
        raise NotFoundError("no such grant", resource="grant")
    await service.revoke_grant(ctx, request.path_params["grant_id"])
    return Response(status_code=204)


# ----------------------------------------------------------------- policies


@api(response=PolicyList)
async def list_policies(request: Request) -> JSONResponse:
    ctx = await require_permission(request, "core:policy:read")
    rows = await services_of(request).permission_service.list_policies(ctx)
    return JSONResponse({"items": [_policy_json(row) for row in rows]})


@api(response=PolicyOut)
async def get_policy(request: Request) -> JSONResponse:
    ctx = await require_permission(request, "core:policy:read")
    row = await services_of(request).permission_service.get_policy(ctx, request.path_params["id"])
    return JSONResponse(_policy_json(row))


@api(request=PolicyInput, response=PolicyOut, status=201, errors=(409,), response_headers=("Location",))
async def create_policy(request: Request) -> JSONResponse:
    ctx = await require_permission(request, "core:policy:write")
    policy = policy_from_json(unstructure(await json_body(request, PolicyInput)))
    row = await services_of(request).permission_service.create_policy(ctx, policy)
    return JSONResponse(_policy_json(row), status_code=201, headers={"Location": f"{request.url.path}/{policy.id}"})


@api(request=PolicyUpdate, response=PolicyOut, errors=(409,))
async def update_policy(request: Request) -> JSONResponse:
    ctx = await require_permission(request, "core:policy:write")
    body = unstructure(await json_body(request, PolicyUpdate))
    if body["id"] is None:
        body["id"] = request.path_params["id"]
    row = await services_of(request).permission_service.update_policy(
        ctx, request.path_params["id"], policy_from_json(body)
    )
    return JSONResponse(_policy_json(row))


@api(status=204, errors=(409,))
async def delete_policy(request: Request) -> Response:
    ctx = await require_permission(request, "core:policy:write")
    await services_of(request).permission_service.delete_policy(ctx, request.path_params["id"])
    return Response(status_code=204)


routes = [
    Route("/permissions/check", check, methods=["POST"]),
    Route("/permissions/explain", explain, methods=["POST"]),
    Route("/roles", list_roles, methods=["GET"]),
    Route("/roles", create_role, methods=["POST"]),
    Route("/roles/{name}", get_role, methods=["GET"]),
    Route("/roles/{name}", update_role, methods=["PUT"]),
    Route("/roles/{name}", delete_role, methods=["DELETE"]),
    Route("/roles/{name}/grants", list_grants, methods=["GET"]),
    Route("/roles/{name}/grants", grant_role, methods=["POST"]),
    Route("/roles/{name}/grants/{grant_id}", revoke_grant, methods=["DELETE"]),
    Route("/policies", list_policies, methods=["GET"]),
    Route("/policies", create_policy, methods=["POST"]),
    Route("/policies/{id}", get_policy, methods=["GET"]),
    Route("/policies/{id}", update_policy, methods=["PUT"]),
    Route("/policies/{id}", delete_policy, methods=["DELETE"]),
]
