"""RFC 9457 problem details: the one place that maps errors to HTTP statuses.

Bodies never carry stack traces, tokens, or which permission was missing; 404 bodies never name a
tenant the caller did not name themselves.
"""

from __future__ import annotations

import math
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from plexica.identity.keycloak import IdentityAdminError
from plexica_sdk.errors import (
    AuthenticationError,
    BackendUnavailableError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    PlexicaError,
    PluginCallError,
    RateLimitedError,
    TenantSuspendedError,
    ValidationError,
)

__all__ = ["PROBLEM_JSON", "PreconditionRequiredError", "ProblemResponse", "problem", "problem_for"]

PROBLEM_JSON = "application/problem+json"
_TYPE_BASE = "https://plexica.dev/problems/"


class PreconditionRequiredError(PlexicaError):
    """A conditional request header (``If-Match``) is required and missing: 428."""

    def __init__(self, header: str = "If-Match") -> None:
        super().__init__(f'send {header}: "<version>" (from the ETag), or {header}: *')
        self.header = header


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    kind: str | None = None,
    trace_id: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> ProblemResponse:
    body: dict[str, Any] = {"type": _TYPE_BASE + (kind or str(status)), "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if trace_id:
        body["trace_id"] = trace_id
    body.update(extra)
    return ProblemResponse(body, status_code=status, headers=headers)


def problem_for(exc: BaseException, *, trace_id: str | None = None) -> ProblemResponse:
    """Turn any exception into a problem response; unknown ones become a bare 500."""
    match exc:
        case AuthenticationError():
            return problem(
                401,
                "Unauthorized",
                exc.reason,
                kind="unauthorized",
                trace_id=trace_id,
                headers={"WWW-Authenticate": 'Bearer realm="plexica"'},
            )
        case TenantSuspendedError():
            return problem(403, "Forbidden", "this tenant is suspended", kind="tenant-suspended", trace_id=trace_id)
        case PermissionDeniedError():
            return problem(403, "Forbidden", "you are not allowed to do this", kind="forbidden", trace_id=trace_id)
        case NotFoundError():
            return problem(404, "Not Found", "the resource does not exist", kind="not-found", trace_id=trace_id)
        case ValidationError():
            return problem(
                422,
                "Unprocessable Content",
                str(exc),
                kind="validation",
                trace_id=trace_id,
                errors=[{"field": exc.field, "message": line} for line in exc.problems],
            )
        case ConflictError():
            return problem(409, "Conflict", str(exc), kind="conflict", trace_id=trace_id)
        case PreconditionRequiredError():
            return problem(428, "Precondition Required", str(exc), kind="precondition-required", trace_id=trace_id)
        case RateLimitedError():
            return problem(
                429,
                "Too Many Requests",
                "the rate limit is exhausted; retry after the number of seconds in Retry-After",
                kind="rate-limited",
                trace_id=trace_id,
                headers={"Retry-After": str(max(1, math.ceil(exc.retry_after)))},
                policy=exc.policy,
            )
        case BackendUnavailableError():
            return problem(
                503, "Service Unavailable", f"{exc.backend} is unavailable", kind="unavailable", trace_id=trace_id
            )
        case PluginCallError():
            return problem(502, "Bad Gateway", f"plugin {exc.plugin!r} failed", kind="plugin-failed", trace_id=trace_id)
        case IdentityAdminError():
            return problem(
                502, "Bad Gateway", "the identity server refused the change", kind="identity", trace_id=trace_id
            )
        case HTTPException():
            return problem(
                exc.status_code,
                _title(exc.status_code),
                exc.detail if exc.status_code < 500 else None,
                trace_id=trace_id,
                headers=dict(exc.headers or {}),
            )
        case PlexicaError():
            return problem(400, "Bad Request", str(exc), kind="bad-request", trace_id=trace_id)
    return problem(500, "Internal Server Error", "an unexpected error occurred", kind="internal", trace_id=trace_id)


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
