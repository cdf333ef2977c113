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
from plexica.http.services import services_of
from plexica.permissions import Explanation, is_permission_key, policy_from_json, policy_to_json
from plexica.permissions.repository import GrantRow, PolicyRow
from plexica_sdk.errors import NotFoundError, ValidationError
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


def _optional_str(body: dict[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is not None and not isinstance(value, str):
        raise ValidationError(f"{field} must be a string", field=field)
    return value


async def _question(request: Request) -> tuple[TenantContext, str, dict[str, Any] | None, str | None]:
    """``(ctx, permission, resource, user_id)`` of a check or explain request."""
    ctx = require_tenant(request)
    body = await json_body(request, dict)
    permission = body.get("permission")
    if not isinstance(permission, str) or not is_permission_key(permission):
        raise ValidationError("permission must be a key such as notes:note:read", field="permission")
    resource = body.get("resource")
    if resource is not None and not isinstance(resource, dict):
        raise ValidationError("resource must be an object of attributes", field="resource")
    user_id = _optional_str(body, "user_id")
    if user_id is not None and (ctx.user is None or user_id != ctx.user.id):
        await require_permission(request, INSPECT)
    else:
        user_id = None
    return ctx, permission, resource, user_id


async def check(request: Request) -> JSONResponse:
    """Whether the caller (or, for inspectors, ``user_id``) holds ``permission`` on ``resource``."""
    ctx, permission, resource, user_id = await _question(request)
    engine = services_of(request).permissions
    if user_id is None:
        decision = await engine.authorize(ctx, permission, resource)
    else:
        decision = (await engine.explain(ctx, permission, resource, user_id=user_id)).decision
    return JSONResponse({"permission": permission, "allowed": decision.allowed})


async def explain(request: Request) -> JSONResponse:
    """The decision with its working: roles in effect, the deciding grant or policy, every policy."""
    ctx, permission, resource, user_id = await _question(request)
    explanation = await services_of(request).permissions.explain(ctx, permission, resource, user_id=user_id)
    return JSONResponse(_explanation_json(explanation))


# -------------------------------------------------------------------- roles


async def list_roles(request: Request) -> JSONResponse:
    ctx = await require_permission(request, "core:role:read")
    roles = await services_of(request).permission_service.list_roles(ctx)
    return JSONResponse({"items": [attrs.asdict(role) for role in roles]})


async def get_role(request: Request) -> JSONResponse:
    ctx = await require_permission(request, "core:role:read")
    role = await services_of(request).permission_service.get_role(ctx, request.path_params["name"])
    return JSONResponse(attrs.asdict(role))


async def create_role(request: Request) -> JSONResponse:
    ctx = await require_permission(request, "core:role:write")
    body = await json_body(request, dict)
    role = await services_of(request).permission_service.create_role(
        ctx, body.get("name", ""), body.get("permissions", []), body.get("description", "")
    )
    return JSONResponse(attrs.asdict(role), status_code=201, headers={"Location": f"{request.url.path}/{role.name}"})


async def update_role(request: Request) -> JSONResponse:
    ctx = await require_permission(request, "core:role:write")
    body = await json_body(request, dict)
    name = request.path_params["name"]
    if body.get("name", name) != name:
        raise ValidationError("the name in the body must match the role's", field="name")
    role = await services_of(request).permission_service.update_role(
        ctx, name, body.get("permissions", []), body.get("description", "")
    )
    return JSONResponse(attrs.asdict(role))


async def delete_role(request: Request) -> Response:
    ctx = await require_permission(request, "core:role:write")
    await services_of(request).permission_service.delete_role(ctx, request.path_params["name"])
    return Response(status_code=204)


async def list_grants(request: Request) -> JSONResponse:
    ctx = await require_permission(request, "core:role:read")
    query = request.query_params
    grants = await services_of(request).permission_service.list_grants(
        ctx, role=request.path_params["name"], user_id=query.get("user_id"), team_id=query.get("team_id")
    )
    return JSONResponse({"items": [_grant_json(grant) for grant in grants]})


async def grant_role(request: Request) -> JSONResponse:
    ctx = await require_permission(request, "core:role:grant")
    body = await json_body(request, dict)
    grant = await services_of(request).permission_service.grant(
        ctx,
        request.path_params["name"],
        user_id=_optional_str(body, "user_id"),
        team_id=_optional_str(body, "team_id"),
        workspace_id=_optional_str(body, "workspace_id"),
        granted_by=ctx.user.id if ctx.user else None,
    )
    return JSONResponse(_grant_json(grant), status_code=201)


async def revoke_grant(request: Request) -> Response:
    ctx = await require_permission(request, "core:role:grant")
    service = services_of(request).permission_service
    grants = await service.list_grants(ctx, role=request.path_params["name"])
    if not any(grant.id == request.path_params["grant_id"] for grant in grants):
        raise NotFoundError("no such grant", resource="grant")
    await service.revoke_grant(ctx, request.path_params["grant_id"])
    return Response(status_code=204)


# ----------------------------------------------------------------- policies


async def list_policies(request: Request) -> JSONResponse:
    ctx = await require_permission(request, "core:policy:read")
    rows = await services_of(request).permission_service.list_policies(ctx)
    return JSONResponse({"items": [_policy_json(row) for row in rows]})


async def get_policy(request: Request) -> JSONResponse:
    ctx = await require_permission(request, "core:policy:read")
    row = await services_of(request).permission_service.get_policy(ctx, request.path_params["id"])
    return JSONResponse(_policy_json(row))


async def create_policy(request: Request) -> JSONResponse:
    ctx = await require_permission(request, "core:policy:write")
    policy = policy_from_json(await json_body(request, dict))
    row = await services_of(request).permission_service.create_policy(ctx, policy)
    return JSONResponse(_policy_json(row), status_code=201, headers={"Location": f"{request.url.path}/{policy.id}"})


async def update_policy(request: Request) -> JSONResponse:
    ctx = await require_permission(request, "core:policy:write")
    body = await json_body(request, dict)
    body.setdefault("id", request.path_params["id"])
    row = await services_of(request).permission_service.update_policy(
        ctx, request.path_params["id"], policy_from_json(body)
    )
    return JSONResponse(_policy_json(row))


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
