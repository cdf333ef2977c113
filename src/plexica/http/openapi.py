"""The host's OpenAPI 3.1 document, generated from the routes' typed bodies.

Each handler's :func:`plexica_sdk.api` metadata says what it structures from the request and what it
answers: those attrs classes become the request bodies and response schemas (via
:func:`plexica_sdk.schema.json_schema`), so the document is the code and a contract fuzzer
(schemathesis, ``tests/e2e/test_contract.py``) can hold the host to it. Client errors are the
error table's (:data:`plexica.errors.PROBLEM_KINDS`), every one a ``application/problem+json``
``Problem``. Plugin routes are included the same way, under ``/api/plugins/{name}/``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from starlette.routing import BaseRoute, Mount, Route

from plexica.auth.gateway import (
    NONCE_HEADER,
    ROLES_HEADER,
    SIGNATURE_HEADER,
    TENANT_HEADER,
    TIMESTAMP_HEADER,
    USER_HEADER,
)
from plexica.errors import HTTP_STATUS_KINDS, INTERNAL, PROBLEM_KINDS, PROBLEM_TYPE_BASE
from plexica_sdk.schema import RouteApi, json_schema, route_api

__all__ = ["openapi_document"]

_PROBLEM_REF: Final = {"$ref": "#/components/schemas/Problem"}
_CONVERTOR: Final = re.compile(r"\{(\w+):\w+\}")
#: What any authenticated route may answer: no or a bad token, forbidden, not found (no tenant, no
#: such resource), a malformed header or parameter, rate limited, a dependency down, a host bug.
_ANY_ROUTE: Final = (400, 401, 403, 404, 422, 429, 500, 503)
_PUBLIC_ROUTE: Final = (400, 404, 429, 500, 503)
#: What reading a JSON body adds: too large, not JSON, not fitting the class.
_WITH_BODY: Final = (413, 415, 422)
_RESPONSE_HEADERS: Final = {
    "ETag": {"description": "The resource's version, for If-Match", "schema": {"type": "string"}},
    "Location": {"description": "Where the created resource lives", "schema": {"type": "string"}},
}
_PROBLEM_SCHEMA: Final = {
    "type": "object",
    "description": "An RFC 9457 problem; `type` is a stable URI under " + PROBLEM_TYPE_BASE,
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "trace_id": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "422 only: one entry per offending field, `field` its path (`members[2].role`)",
            "items": {
                "type": "object",
                "properties": {"field": {"type": ["string", "null"]}, "message": {"type": "string"}},
                "required": ["field", "message"],
            },
        },
        "policy": {"type": ["string", "null"], "description": "429 only: the rate-limit policy"},
    },
    "required": ["type", "title", "status"],
}


def _walk(routes: Iterable[BaseRoute], prefix: str = "") -> Iterable[tuple[str, Route]]:
    for route in routes:
        if isinstance(route, Mount):
            inner = getattr(route.app, "router", route.app)
            yield from _walk(getattr(inner, "routes", []), prefix + route.path)
        elif isinstance(route, Route) and route.include_in_schema:
            yield prefix + route.path, route


def _titles() -> dict[int, str]:
    """The error table's title for each status (the first class's, for statuses several share)."""
    titles = {kind.status: kind.title for kind in HTTP_STATUS_KINDS.values()}
    for kind in (*PROBLEM_KINDS.values(), INTERNAL):
        titles.setdefault(kind.status, kind.title)
    return titles


def _operation(
    path: str, method: str, route: Route, meta: RouteApi | None, components: dict[str, Any], titles: Mapping[int, str]
) -> dict[str, Any]:
    doc = inspect.getdoc(route.endpoint) or ""
    summary, _, description = doc.partition("\n\n")
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
        for name in route.param_convertors
    ]
    operation: dict[str, Any] = {
        "summary": " ".join(summary.split()) or route.name,
        "operationId": _operation_id(method, path),
        "tags": [_tag(path)],
    }
    if description.strip():
        operation["description"] = description.strip()
    statuses = set(_PUBLIC_ROUTE if meta is not None and meta.public else _ANY_ROUTE)
    success: dict[str, Any] = {"description": "OK"}
    if meta is None:
        statuses |= set(_WITH_BODY) if method in ("post", "put", "patch") else set()
        success_status = "200"
        success["description"] = "OK (this route declares no schema)"
    else:
        parameters += [
            {
                "name": q.name,
                "in": "query",
                "required": q.required,
                "schema": dict(q.schema),
                "description": q.description,
            }
            for q in meta.query
        ]
        parameters += [
            {
                "name": h.name,
                "in": "header",
                "required": h.required,
                "schema": dict(h.schema),
                "description": h.description,
            }
            for h in meta.headers
        ]
        if meta.request is not None:
            statuses |= set(_WITH_BODY)
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": json_schema(meta.request, components)}},
            }
        statuses |= set(meta.errors)
        success_status = str(meta.status)
        if meta.response is not None:
            success["content"] = {"application/json": {"schema": json_schema(meta.response, components)}}
        else:
            success["description"] = "No Content" if meta.status == 204 else "Done"
        if meta.response_headers:
            success["headers"] = {name: _RESPONSE_HEADERS[name] for name in meta.response_headers}
    if parameters:
        operation["parameters"] = parameters
    responses: dict[str, Any] = {success_status: success}
    for status in sorted(statuses):
        if status < 400:  # 304: no body
            responses[str(status)] = {"description": "Not Modified" if status == 304 else "Redirect"}
            continue
        responses[str(status)] = {
            "description": titles.get(status, "Problem"),
            "content": {"application/problem+json": {"schema": _PROBLEM_REF}},
        }
    operation["responses"] = responses
    if meta is not None and meta.public:
        operation["security"] = []
    return operation


def _operation_id(method: str, path: str) -> str:
    """``get_api_core_v1_workspaces_workspace_id``: unique per method and path, stable across runs."""
    return method + "_" + "_".join(re.findall(r"[A-Za-z0-9]+", path))


def _tag(path: str) -> str:
    parts = [part for part in path.split("/") if part and not part.startswith("{")]
    if parts[:2] == ["api", "plugins"] and len(parts) > 2:
        return f"plugin:{parts[2]}"
    if parts[:3] == ["api", "core", "v1"] and len(parts) > 3:
        return parts[3]
    return parts[0] if parts else "root"


def _security(gateway: bool) -> tuple[dict[str, Any], list[dict[str, list[str]]]]:
    schemes: dict[str, Any] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A token of the tenant's realm (or the platform realm, for super-admins)",
        }
    }
    if not gateway:
        return schemes, [{"bearer": []}]
    names = (USER_HEADER, ROLES_HEADER, TENANT_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER)
    for name in names:
        schemes[name] = {"type": "apiKey", "in": "header", "name": name, "description": "Set by the signing gateway"}
    return schemes, [{name: [] for name in names}]


def openapi_document(routes: Iterable[BaseRoute], *, title: str, version: str, gateway: bool = False) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``; ``gateway``: the host trusts gateway-signed headers, not tokens.

    Raises:
        TypeError: a route's metadata names a type JSON Schema cannot express.
    """
    components: dict[str, Any] = {"Problem": _PROBLEM_SCHEMA}
    titles = _titles()
    paths: dict[str, dict[str, Any]] = {}
    for raw_path, route in _walk(routes):
        path = _CONVERTOR.sub(r"{\1}", raw_path)
        meta = route_api(route.endpoint)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            paths.setdefault(path, {})[method.lower()] = _operation(
                path, method.lower(), route, meta, components, titles
            )
    schemes, security = _security(gateway)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": schemes},
        "security": security,
    }
