"""The OpenAPI document's security schemes and its handling of routes without metadata."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Mount, Route, Router

from plexica.http.openapi import openapi_document


async def _undeclared(request: object) -> Response:
    """Something a plugin forgot to describe."""
    return Response()


def test_gateway_mode_describes_the_signed_headers_not_a_bearer_token() -> None:
    token = openapi_document([], title="t", version="1")
    assert token["security"] == [{"bearer": []}]
    gateway = openapi_document([], title="t", version="1", gateway=True)
    [requirement] = gateway["security"]
    assert {"X-User-ID", "X-Gateway-Signature", "X-Gateway-Timestamp"} <= set(requirement)
    assert gateway["components"]["securitySchemes"]["X-User-ID"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-User-ID",
        "description": "Set by the signing gateway",
    }


def test_a_route_without_metadata_is_listed_with_its_path_parameters_and_problems() -> None:
    routes = [Mount("/api/plugins/x", app=Router([Route("/items/{key:path}", _undeclared, methods=["POST"])]))]
    document = openapi_document(routes, title="t", version="1")
    operation = document["paths"]["/api/plugins/x/items/{key}"]["post"]
    assert operation["operationId"] == "post_api_plugins_x_items_key"
    assert operation["tags"] == ["plugin:x"]
    assert operation["summary"] == "Something a plugin forgot to describe."
    assert operation["parameters"][0]["name"] == "key"
    assert {"200", "401", "413", "415", "422", "500"} <= set(operation["responses"])
