"""Core API: the caller and their plugins."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from plexica.http.guards import require_permission, require_principal
from plexica.http.schemas.platform import Me, PluginList
from plexica.http.services import services_of
from plexica_sdk import context
from plexica_sdk.converter import unstructure
from plexica_sdk.schema import api

__all__ = ["routes"]


@api(response=Me)
async def me(request: Request) -> JSONResponse:
    """Who the token says the caller is, and in which tenant."""
    principal = require_principal(request)
    ctx = context.get()
    return JSONResponse(
        {
            "id": principal.id,
            "username": principal.username,
            "roles": list(principal.roles),
            "is_super_admin": principal.is_super_admin,
            "tenant": ctx.slug if ctx else None,
            "workspace": ctx.workspace_id if ctx else None,
        }
    )


@api(response=PluginList)
async def list_plugins(request: Request) -> JSONResponse:
    """The plugins of this host; inside a tenant, with whether each is installed there."""
    services = services_of(request)
    await require_permission(request, "core:plugin:read")
    tenant = await services.tenants.get(context.current().slug)
    installed = await services.tenants.installed_plugins(tenant)
    items = []
    for info in services.plugins():
        item = unstructure(info)
        item["installed"] = info.mode == "builtin" or info.name in installed
        items.append(item)
    return JSONResponse({"items": items})


routes = [
    Route("/me", me, methods=["GET"]),
    Route("/plugins", list_plugins, methods=["GET"]),
]
