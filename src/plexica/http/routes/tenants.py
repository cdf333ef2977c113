"""Core API: tenants (super-admins manage them; a tenant's members may read their own)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from plexica.http.guards import json_body, require_principal, require_super_admin
from plexica.http.schemas.tenants import CreateTenant, TenantInfo, TenantList
from plexica.http.services import services_of
from plexica.tenancy.naming import validate_slug
from plexica_sdk import context
from plexica_sdk.converter import unstructure
from plexica_sdk.errors import NotFoundError
from plexica_sdk.schema import api

__all__ = ["routes"]


def _tenant_json(tenant: Any) -> dict[str, Any]:
    return unstructure(tenant)  # type: ignore[no-any-return]


@api(request=CreateTenant, response=TenantInfo, status=201, errors=(409,), response_headers=("Location",))
async def create_tenant(request: Request) -> JSONResponse:
    """Provision a tenant (super-admin)."""
    require_super_admin(request)
    body = await json_body(request, CreateTenant)
    validate_slug(body.slug)
    tenant = await services_of(request).tenants.provision(body.slug, name=body.name, plan=body.plan)
    return JSONResponse(
        _tenant_json(tenant), status_code=201, headers={"Location": f"{request.url.path}/{tenant.slug}"}
    )


@api(response=TenantList)
async def list_tenants(request: Request) -> JSONResponse:
    """List tenants (super-admin)."""
    require_super_admin(request)
    tenants = await services_of(request).tenants.list()
    return JSONResponse({"items": [_tenant_json(t) for t in tenants]})


@api(response=TenantInfo)
async def get_tenant(request: Request) -> JSONResponse:
    """One tenant: super-admins see any; a tenant's users see only their own."""
    principal = require_principal(request)
    slug = request.path_params["slug"]
    if not principal.is_super_admin:
        ctx = context.get()
        if ctx is None or ctx.slug != slug:
            raise NotFoundError("tenant not found", resource="tenant")
    return JSONResponse(_tenant_json(await services_of(request).tenants.get(slug)))


@api(response=TenantInfo, errors=(409,))
async def suspend_tenant(request: Request) -> JSONResponse:
    """Suspend a tenant: its users are refused at once (super-admin)."""
    require_super_admin(request)
    return JSONResponse(_tenant_json(await services_of(request).tenants.suspend(request.path_params["slug"])))


@api(response=TenantInfo, errors=(409,))
async def resume_tenant(request: Request) -> JSONResponse:
    """Resume a suspended tenant (super-admin)."""
    require_super_admin(request)
    return JSONResponse(_tenant_json(await services_of(request).tenants.resume(request.path_params["slug"])))


@api(status=204, errors=(409,))
async def delete_tenant(request: Request) -> Response:
    """Delete a tenant and all its data (super-admin)."""
    require_super_admin(request)
    await services_of(request).tenants.delete(request.path_params["slug"])
    return Response(status_code=204)


routes = [
    Route("/tenants", create_tenant, methods=["POST"]),
    Route("/tenants", list_tenants, methods=["GET"]),
    Route("/tenants/{slug}", get_tenant, methods=["GET"]),
    Route("/tenants/{slug}", delete_tenant, methods=["DELETE"]),
    Route("/tenants/{slug}/suspend", suspend_tenant, methods=["POST"]),
    Route("/tenants/{slug}/resume", resume_tenant, methods=["POST"]),
]
