"""Core API: the calling tenant's configuration of one plugin (``/api/core/v1/plugins/{name}/config``).

Reading and changing it both need ``core:plugin:configure`` (tenant admins hold it): a plugin's
configuration can hold what its users should not see. ``PUT`` replaces the whole configuration,
``PATCH`` merges a JSON Merge Patch (RFC 7396) into it; either is validated against the plugin's
``config_schema`` first, and an invalid one is a 422 naming the field that changes nothing.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from plexica.http.guards import json_body, require_permission
from plexica.http.schemas.platform import PluginConfig
from plexica.http.services import services_of
from plexica_sdk.schema import api

__all__ = ["CONFIGURE", "routes"]

CONFIGURE = "core:plugin:configure"


def _body(plugin: str, config: dict[str, Any], schema: Any) -> JSONResponse:
    return JSONResponse({"plugin": plugin, "config": config, "schema": dict(schema)})


@api(response=PluginConfig)
async def get_config(request: Request) -> JSONResponse:
    """The plugin's configuration in the caller's tenant, schema defaults filled in, and its schema."""
    ctx = await require_permission(request, CONFIGURE)
    service, name = services_of(request).plugin_config, request.path_params["name"]
    return _body(name, await service.get(ctx, name), service.schema(name))


@api(request=dict[str, Any], response=PluginConfig)
async def put_config(request: Request) -> JSONResponse:
    """Replace the plugin's configuration in the caller's tenant (the body is the whole object)."""
    ctx = await require_permission(request, CONFIGURE)
    service, name = services_of(request).plugin_config, request.path_params["name"]
    config: dict[str, Any] = await json_body(request, dict)
    return _body(name, await service.set(ctx.slug, name, config), service.schema(name))


@api(request=dict[str, Any], response=PluginConfig)
async def patch_config(request: Request) -> JSONResponse:
    """Merge a JSON Merge Patch into the plugin's configuration (``null`` resets a key to its default)."""
    ctx = await require_permission(request, CONFIGURE)
    service, name = services_of(request).plugin_config, request.path_params["name"]
    changes: dict[str, Any] = await json_body(request, dict)
    return _body(name, await service.update(ctx.slug, name, changes), service.schema(name))


routes = [
    Route("/plugins/{name}/config", get_config, methods=["GET"]),
    Route("/plugins/{name}/config", put_config, methods=["PUT"]),
    Route("/plugins/{name}/config", patch_config, methods=["PATCH"]),
]
