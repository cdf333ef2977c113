"""Request helpers for core route handlers: who is calling, what they may do, what they sent."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.requests import Request

from plexica.http.scope import request_state
from plexica.http.services import services_of
from plexica_sdk import context
from plexica_sdk.converter import structure
from plexica_sdk.errors import AuthenticationError, NotFoundError, PermissionDeniedError, ValidationError
from plexica_sdk.http import DEFAULT_MAX_BODY_BYTES
from plexica_sdk.http import json_body as read_json
from plexica_sdk.types import Principal, TenantContext

if TYPE_CHECKING:
    pass

__all__ = [
    "json_body",
    "patch_body",
    "require_permission",
    "require_principal",
    "require_super_admin",
    "require_tenant",
]

T = TypeVar("T")

MAX_BODY_BYTES = DEFAULT_MAX_BODY_BYTES


def require_principal(request: Request) -> Principal:
    """The authenticated caller. Raises ``AuthenticationError`` (401) when there is none."""
    principal: Principal | None = request_state(request.scope).principal
    if principal is None:
        raise AuthenticationError("a bearer token is required")
    return principal


def require_super_admin(request: Request) -> Principal:
    """A platform super-admin (platform realm, ``super_admin`` role), else 403."""
    principal = require_principal(request)
    if not principal.is_super_admin:
        raise PermissionDeniedError("core:platform:admin", "super-admin only")
    return principal


def require_tenant(request: Request) -> TenantContext:
    """The resolved tenant of an authenticated request; without one the route does not exist (404)."""
    require_principal(request)
    ctx = context.get()
    if ctx is None:
        raise NotFoundError("no tenant addressed", resource="tenant")
    return ctx


async def require_permission(
    request: Request, permission: str, resource: Mapping[str, Any] | None = None
) -> TenantContext:
    """The tenant context, if its user holds ``permission`` (403 otherwise, without naming it).

    The decision log records the permission; the 403 body does not.
    """
    ctx = require_tenant(request)
    decision = await services_of(request).authorizer.authorize(ctx, permission, resource)
    if not decision.allowed:
        raise PermissionDeniedError(permission, decision.reason)
    return ctx


async def json_body(request: Request, cls: type[T]) -> T:
    """Parse the JSON object body into ``cls`` with the SDK's safe reader (:func:`plexica_sdk.http.json_body`).

    Too large is a 413, not JSON a 415, and malformed, too deep, NUL-holding or ill-typed input a 422
    naming the field.
    """
    data: Any = await read_json(request, max_bytes=MAX_BODY_BYTES)
    if not isinstance(data, dict):
        raise ValidationError("request body must be a JSON object", field="body")
    return structure(data, cls)


async def patch_body(request: Request, cls: type[Any]) -> dict[str, Any]:
    """The fields a ``PATCH`` body sends, checked against ``cls``: only those present, with their typed values.

    An absent field is unchanged, which a structured instance cannot tell from its default.
    """
    data: Any = await read_json(request, max_bytes=MAX_BODY_BYTES)
    if not isinstance(data, dict):
        raise ValidationError("request body must be a JSON object", field="body")
    typed = structure(data, cls)
    return {name: getattr(typed, name) for name in data}
