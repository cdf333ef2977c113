"""Helpers shared by the users, teams and workspaces routes: the calling tenant user, bodies, pages."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
from starlette.requests import Request

from plexica.http.guards import require_permission
from plexica.http.services import services_of
from plexica.identity.paging import Page, parse_limit
from plexica_sdk.errors import PermissionDeniedError
from plexica_sdk.schema import Query
from plexica_sdk.types import Principal, TenantContext

__all__ = ["PAGING", "allowed", "as_json", "iso", "page_json", "paging", "tenant_user"]

#: The query parameters of every paginated list.
PAGING = (
    Query(name="cursor", description="from the previous page's next_cursor"),
    Query.integer("limit", minimum=1, maximum=200, description="1-200, default 50"),
)


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
