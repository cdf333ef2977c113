"""Metrics label a remote plugin's requests with its route templates, as embedded ones are labelled.

The SDK lists the plugin's templates in its contributions (``route_templates``); the host's
reverse proxy matches each request against them and leaves the match in ``scope["route"]``, where
the host's route templates find it. Without templates (an older SDK) the label is the mount's.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.routing import Mount, Router
from starlette.types import Message, Scope

from plexica.http.route_templates import RouteTemplates
from plexica.remote import ContextSigner
from plexica.remote.client import RemoteClient
from plexica.remote.proxy import RemotePlugin
from plexica.remote.reverse_proxy import MAX_ROUTE_TEMPLATES, template_routes
from plexica.remote.snapshot import Snapshot
from plexica.settings import RemotePluginSettings
from plexica_sdk.errors import AuthenticationError
from tests.remote.processes import Stack
from tests.sdk.remote.tokens import new_key


def _requests(text: str) -> dict[tuple[str, str, str], float]:
    """``http_requests_total`` by (method, route, status), summed over tenants."""
    found: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "http_requests_total":
                key = (sample.labels["method"], sample.labels["route"], sample.labels["status"])
                found[key] = found.get(key, 0.0) + sample.value
    return found


def test_the_metrics_label_remote_requests_with_the_plugins_templates(stack: Stack) -> None:
    with httpx2.Client(base_url=stack.plugins["probe"].url, timeout=5) as plugin:
        templates = plugin.get("/.plexica/contributions").json()["route_templates"]
    assert {"path": "/things/{thing_id}", "methods": ["GET", "HEAD"]} in templates
    assert {"path": "/shelves/{shelf:int}/things/{thing_id}", "methods": ["PUT"]} in templates  # mount flattened

    assert stack.provision("acme").status_code == 201
    token = stack.token("acme")
    with stack.client() as client:
        for thing in ("42", "43", "a%20b"):
            assert client.get(f"/api/plugins/probe/things/{thing}", headers=token).status_code == 200
        assert client.put("/api/plugins/probe/shelves/3/things/9", headers=token).status_code == 200
        client.get("/api/plugins/probe/shelves/3/things/9", headers=token)  # another method: the same template
        assert client.get("/api/plugins/probe/shelves/x/things/9", headers=token).status_code == 404  # not an int
        assert client.get("/api/plugins/probe/nowhere/7", headers=token).status_code == 404
        assert client.get("/api/plugins/probe/things/1").status_code == 401  # refused before the proxy
        assert client.get("/api/plugins/probe/headers", headers=token).status_code == 200
        counted = _requests(client.get("/metrics").text)

    assert counted[("GET", "/api/plugins/probe/things/{thing_id}", "200")] == 3
    assert counted[("PUT", "/api/plugins/probe/shelves/{shelf:int}/things/{thing_id}", "200")] == 1
    assert any(
        method == "GET" and route == "/api/plugins/probe/shelves/{shelf:int}/things/{thing_id}"
        for method, route, _ in counted
    )
    assert counted[("GET", "/api/plugins/probe/*", "404")] == 2
    assert counted[("GET", "/api/plugins/probe/*", "401")] == 1
    assert counted[("GET", "/api/plugins/probe/headers", "200")] == 1
    assert not any("42" in route or "nowhere" in route for _, route, _ in counted)  # never a raw path


def _label(contributions: dict[str, Any], path: str, method: str = "GET") -> str:
    """The label the host's route templates give ``path`` under a remote plugin ``starter``'s mount."""
    snapshot = Snapshot(
        url="http://127.0.0.1:9",
        manifest={"name": "starter", "version": "1.0.0"},
        contributions={"plugin": "starter", "hooks": [], "routes": True, **contributions},
        migrations=None,
        fetched_at="now",
    )
    client = RemoteClient(RemotePluginSettings(name="starter", url="http://127.0.0.1:9"), ContextSigner([new_key()]))
    proxy = RemotePlugin(snapshot, client)
    app = Router([Mount("/api/plugins/starter", routes=proxy.plexica_routes())])  # type: ignore[attr-defined]
    scope: Scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": [], "query_string": b""}

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent outside a tenant")

    with pytest.raises(AuthenticationError):  # no tenant context: refused right after labelling
        anyio.run(app, scope, receive, send)
    return RouteTemplates(app.routes).of(scope, "")


def test_templates_label_and_a_plugin_without_them_keeps_the_mount() -> None:
    templates = {"route_templates": [{"path": "/notes", "methods": ["GET"]}, {"path": "/notes/{note_id}"}]}
    assert _label(templates, "/api/plugins/starter/notes/n-1") == "/api/plugins/starter/notes/{note_id}"
    assert _label(templates, "/api/plugins/starter/notes", "POST") == "/api/plugins/starter/notes"  # 405: kept
    assert _label(templates, "/api/plugins/starter/other") == "/api/plugins/starter/*"
    assert _label({}, "/api/plugins/starter/notes/n-1") == "/api/plugins/starter/*"  # an older SDK
    assert _label({"route_templates": "junk"}, "/api/plugins/starter/notes") == "/api/plugins/starter/*"


def test_bad_templates_are_left_out_and_their_number_is_bounded() -> None:
    routes = template_routes(
        "starter",
        [
            {"path": "/ok/{id:int}", "methods": ["GET"]},
            {"path": "/bad/{id:nosuchconvertor}"},
            {"path": "no-slash"},
            {"path": "/" + "x" * 600},
            "not an entry",
            {"path": "/methods-junk", "methods": "GET"},
        ],
    )
    assert [route.path for route in routes] == ["/ok/{id:int}", "/methods-junk"]
    assert routes[1].methods is None
    many = template_routes("starter", [{"path": f"/r{index}"} for index in range(MAX_ROUTE_TEMPLATES + 10)])
    assert len(many) == MAX_ROUTE_TEMPLATES
