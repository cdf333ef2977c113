"""Helpers shared by the users, teams and workspaces routes: the calling tenant user, bodies, pages."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
from starlette.requests import Request

from plexica.http.guards import json_body, require_permission
from plexica.http.services import services_of
from plexica.identity.paging import Page, parse_limit
from plexica_sdk.errors import PermissionDeniedError
from plexica_sdk.types import Principal, TenantContext

__all__ = ["allowed", "as_json", "body_object", "iso", "page_json", "paging", "tenant_user"]


async def tenant_user(request: Request, permission: str) -> tuple[TenantContext, Principal]:
    """The tenant context and its calling user, if the user belongs to this tenant and holds ``permission``.

    A platform principal (a super-admin addressing a tenant) is not one of its users: 403.
    """
    ctx = await require_permission(request, permission)
    principal = ctx.user
    if principal is None or principal.tenant_slug != ctx.slug:
        raise PermissionDeniedError(permission, "not a user of this tenant")
    return ctx, principal


async def allowed(request: Request, ctx: TenantContext, permission: str) -> bool:
    """Whether the caller holds ``permission`` (never raises for a denial)."""
    decision = await services_of(request).authorizer.authorize(ctx, permission)
    return decision.allowed


async def body_object(request: Request) -> dict[str, Any]:
    """The JSON object the request sent (422 for anything else)."""
    data: dict[str, Any] = await json_body(request, dict)
    return data


def paging(request: Request) -> tuple[str | None, int]:
    """``(cursor, limit)`` from the query string (422 for a bad limit)."""
    return request.query_params.get("cursor") or None, parse_limit(request.query_params.get("limit"))


def iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def page_json(page: Page[Any], item: Any) -> dict[str, Any]:
    return {"items": [item(entry) for entry in page.items], "next_cursor": page.next_cursor}


def as_json(value: Any) -> dict[str, Any]:
    """An attrs value with datetimes as ISO strings."""
    return {
        key: (item.isoformat() if isinstance(item, dt.datetime) else item)
        for key, item in attrs.asdict(value, recurse=False).items()
    }
