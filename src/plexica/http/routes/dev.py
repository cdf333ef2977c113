"""The dev issuer's OIDC documents, served only when the dev issuer is in use."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from plexica.http.services import services_of
from plexica_sdk.errors import NotFoundError, ValidationError
from plexica_sdk.schema import api

__all__ = ["routes"]


@api(response=dict[str, Any], public=True)
async def discovery(request: Request) -> JSONResponse:
    """OpenID discovery document of a dev realm."""
    issuer = services_of(request).dev_issuer
    if issuer is None:
        raise NotFoundError("no dev issuer")
    try:
        return JSONResponse(issuer.discovery(request.path_params["realm"]))
    except ValidationError:
        raise NotFoundError("no such realm") from None


@api(response=dict[str, Any], public=True)
async def certs(request: Request) -> JSONResponse:
    """Public keys (JWKS) of a dev realm."""
    issuer = services_of(request).dev_issuer
    if issuer is None:
        raise NotFoundError("no dev issuer")
    try:
        return JSONResponse(issuer.jwks(request.path_params["realm"]))
    except ValidationError:
        raise NotFoundError("no such realm") from None


routes = [
    Route("/realms/{realm}/.well-known/openid-configuration", discovery, methods=["GET"]),
    Route("/realms/{realm}/protocol/openid-connect/certs", certs, methods=["GET"]),
]
