"""RFC 9457 problem details: renders the error table of :mod:`plexica.errors` as problem+json.

Bodies never carry stack traces, tokens, internal messages or which permission was missing; 404
bodies never name a tenant the caller did not name themselves. Every body has a stable ``type``
URI (``https://plexica.dev/problems/<slug>``) and, when known, the request's ``trace_id``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Route

from plexica.errors import (
    PROBLEM_TYPE_BASE,
    AuthenticationError,
    PreconditionRequiredError,
    ProblemKind,
    RateLimitedError,
    ValidationError,
    kind_for_status,
    kind_of,
)
from plexica.http.scope import trace_id_of

__all__ = [
    "PROBLEM_JSON",
    "PreconditionRequiredError",
    "ProblemResponse",
    "http_exception_handler",
    "is_server_error",
    "problem",
    "problem_for",
]

PROBLEM_JSON = "application/problem+json"


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
    """A problem response; ``kind`` is the slug of its ``type`` URI (default: the status)."""
    body: dict[str, Any] = {"type": PROBLEM_TYPE_BASE + (kind or str(status)), "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if trace_id:
        body["trace_id"] = trace_id
    body.update(extra)
    return ProblemResponse(body, status_code=status, headers=headers)


def _render(kind: ProblemKind, detail: str | None, trace_id: str | None, **extra: Any) -> ProblemResponse:
    return problem(kind.status, kind.title, detail, kind=kind.slug, trace_id=trace_id, **extra)


def problem_for(exc: BaseException, *, trace_id: str | None = None) -> ProblemResponse:
    """Turn any exception into its problem response; errors without a row are a bare 500."""
    if isinstance(exc, HTTPException):
        kind = kind_for_status(exc.status_code)
        detail = exc.detail if exc.status_code < 500 and isinstance(exc.detail, str) else None
        # Starlette's default detail is the status phrase: the table's text says more.
        if detail == kind.title or detail == _phrase(exc.status_code):
            detail = kind.detail
        return _render(kind, detail, trace_id, headers=dict(exc.headers or {}))
    kind = kind_of(exc)
    detail = kind.detail_for(exc)
    match exc:
        case AuthenticationError() if kind.status == 401:
            return _render(kind, detail, trace_id, headers={"WWW-Authenticate": 'Bearer realm="plexica"'})
        case ValidationError() if kind.status == 422:
            fields = getattr(exc, "fields", None) or [exc.field] * len(exc.problems)
            errors = [{"field": field, "message": line} for field, line in zip(fields, exc.problems, strict=False)]
            return _render(kind, detail, trace_id, errors=errors)
        case RateLimitedError() if kind.status == 429:
            retry_after = str(max(1, math.ceil(exc.retry_after)))
            return _render(kind, detail, trace_id, headers={"Retry-After": retry_after}, policy=exc.policy)
    return _render(kind, detail, trace_id)


def is_server_error(exc: BaseException) -> bool:
    """Whether ``exc`` is answered with a 500: a host or plugin bug, to be logged with its traceback."""
    if isinstance(exc, HTTPException):
        return exc.status_code == 500
    return kind_of(exc).status == 500


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    """Starlette's handler for ``HTTPException`` (routing's 405, a plugin's 413): problem+json, not text.

    A 405's ``Allow`` lists every method of the path: Starlette names only the first route's, and
    Plexica declares one route per method.
    """
    if isinstance(exc, HTTPException) and exc.status_code == 405:
        app = request.scope.get("app")
        # Mounts rewrite ``root_path`` as they route; match again from the app's own root.
        top = {**request.scope, "root_path": request.scope.get("app_root_path", "")}
        routes: Iterable[BaseRoute] = getattr(app, "routes", None) or ()
        methods = _allowed_methods(routes, top)
        if methods:
            exc = HTTPException(405, exc.detail, headers={**(exc.headers or {}), "Allow": ", ".join(sorted(methods))})
    return problem_for(exc, trace_id=trace_id_of(request.scope))


def _allowed_methods(routes: Iterable[BaseRoute], scope: dict[str, Any]) -> set[str]:
    """The methods of every route whose path matches ``scope``, through mounts and plugin apps."""
    methods: set[str] = set()
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        if isinstance(route, Route):
            methods.update(route.methods or ())
        elif isinstance(route, Mount):
            inner = route.app
            nested: Iterable[BaseRoute] = (
                getattr(inner, "routes", None) or getattr(getattr(inner, "router", None), "routes", None) or ()
            )
            methods |= _allowed_methods(nested, {**scope, **child})
    return methods


def _phrase(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
