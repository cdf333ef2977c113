"""``/api/plugins/{name}/*`` of a remote plugin: its native routes, reverse-proxied with streaming bodies.

The host's own stages run first, exactly as for an embedded plugin's routes (authentication,
tenant resolution, the plugin enabled for the tenant, the streamed body cap of
:class:`plexica.http.plugin_mount.PluginApp`). Then:

* the caller's identity travels only in a fresh context token (``Plexica-Context``): the request
  headers are an allow-list (:data:`FORWARDED_REQUEST_HEADERS`), so no ``Authorization``, no
  cookie, no hop-by-hop header and no ``Plexica-*`` header of the caller reaches the plugin;
* the body streams to the plugin as it arrives (the cap still counts it) and the answer streams
  back, with hop-by-hop headers, cookies and ``Plexica-*`` headers removed from it;
* a problem the plugin raised (wire protocol problem+json) is raised again host-side, so the
  caller gets the same problem an embedded plugin would produce;
* no connection or the breaker open: 503; no answer within ``timeout_seconds``: 504; an answer
  that is not wire protocol v1: 502. A plugin that dies after its answer started cannot be told
  to the caller any more: the connection is cut, so the truncated body is never taken as complete.

The target is always the plugin's configured URL plus the request's path: no part of a request
chooses the host the proxy connects to.

For the metrics' ``route`` label, the proxy holds the plugin's route templates (its
contributions' ``route_templates``) as Starlette routes and leaves the one a request matches in
``scope["route"]``, as a router does: the host's route templates then label the request
``/api/plugins/notes/notes/{note_id}``, as embedded. A plugin that sends none (an older SDK), or a
path none matches, keeps the mount's ``/api/plugins/{name}/*``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Final, final
from urllib.parse import quote

import aiohttp
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from plexica.remote.client import RemoteClient
from plexica.remote.transport import AnswerTooLarge, plugin_url, read_capped, transport_error
from plexica_sdk import context
from plexica_sdk.errors import AuthenticationError, PayloadTooLargeError, PluginAnswerError
from plexica_sdk.remote.wire import PROBLEM_JSON, PROTOCOL_HEADER, decode_problem

__all__ = [
    "DROPPED_RESPONSE_HEADERS",
    "FORWARDED_REQUEST_HEADERS",
    "MAX_ROUTE_TEMPLATES",
    "ReverseProxy",
    "template_routes",
]

logger = logging.getLogger(__name__)

#: The only request headers forwarded to a plugin: content negotiation, caching and ranges.
FORWARDED_REQUEST_HEADERS: Final = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "content-encoding",
        "content-language",
        "content-length",
        "content-type",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "range",
        "user-agent",
    }
)
#: Response headers never passed back: hop-by-hop ones, cookies on the host's origin, the wire
#: protocol's own, and those the host sets itself (CORS, the server's identity).
DROPPED_RESPONSE_HEADERS: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "set-cookie",
        "server",
        "date",
        "alt-svc",
        "strict-transport-security",
    }
)
_MAX_PROBLEM_BYTES: Final = 64 * 1024
#: The most route templates taken from a plugin (each may become a metrics label), and their length.
MAX_ROUTE_TEMPLATES: Final = 256
_MAX_TEMPLATE_CHARS: Final = 512
_SAFE_PATH_CHARACTERS: Final = "/:@!$&'()*+,;=-._~"


async def _never(request: Request) -> Response:  # pragma: no cover - a label, never dispatched to
    raise AssertionError("a remote route template is not served by the host")


def template_routes(plugin: str, templates: object) -> list[Route]:
    """The plugin's route templates (``[{"path", "methods"}, ...]``) as routes to match paths against.

    Entries that are not templates Starlette compiles (an unknown path convertor, a malformed
    entry) are left out, logged: they only cost the label its precision.
    """
    if not isinstance(templates, Sequence) or isinstance(templates, str):
        return []
    routes: list[Route] = []
    for entry in templates[:MAX_ROUTE_TEMPLATES]:
        path = entry.get("path") if isinstance(entry, Mapping) else None
        methods: Any = entry.get("methods") if isinstance(entry, Mapping) else None
        if not isinstance(methods, list) or not all(isinstance(method, str) for method in methods):
            methods = None
        if not isinstance(path, str) or not path.startswith("/") or len(path) > _MAX_TEMPLATE_CHARS:
            logger.warning("ignoring a route template that is no path", extra={"plugin": plugin})
            continue
        try:
            route = Route(path, _never, methods=methods)
        except (ValueError, AssertionError) as exc:
            logger.warning("ignoring a route template", extra={"plugin": plugin, "template": path, "error": str(exc)})
            continue
        if methods is None:
            route.methods = None  # a template of every method (a function endpoint defaults to GET)
        routes.append(route)
    return routes


def _route_path(scope: Scope) -> str:
    """The path below the mount (``/notes/1`` of ``/api/plugins/notes/notes/1``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        path = path[len(root) :]
    return path or "/"


def _request_headers(scope: Scope) -> list[tuple[str, str]]:
    forwarded = []
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        if name in FORWARDED_REQUEST_HEADERS:
            forwarded.append((name, raw_value.decode("latin-1")))
    return forwarded


def _response_headers(raw: tuple[tuple[bytes, bytes], ...]) -> list[tuple[bytes, bytes]]:
    """The plugin's answer headers as sent, less those the host never passes back."""
    connection = {
        token.strip().lower()
        for name, value in raw
        if name.lower() == b"connection"
        for token in value.decode("latin-1").split(",")
        if token.strip()
    }
    kept = []
    for name, value in raw:
        lower = name.decode("latin-1").lower()
        if lower in DROPPED_RESPONSE_HEADERS or lower in connection or lower.startswith("plexica-"):
            continue
        if lower.startswith("access-control-"):
            continue
        kept.append((lower.encode("latin-1"), value))
    return kept


class _Disconnected(Exception):
    """The caller went away while its body was streaming."""


@final
class ReverseProxy:
    """The ASGI app mounted for a remote plugin's routes (inside the host's ``PluginApp``)."""

    def __init__(self, client: RemoteClient, routes: Sequence[Route] = ()) -> None:
        self.client = client
        self.name = client.name
        #: The plugin's route templates; the host's route templates walk them (``routes``) for labels.
        self.routes = list(routes)

    def _label(self, scope: Scope) -> None:
        """Leave the template the path matches in ``scope["route"]``, as a Starlette router would."""
        partial = None
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                scope["route"] = route
                return
            if match is Match.PARTIAL and partial is None:
                partial = route  # the path, another method: the router's 405 keeps the template
        if partial is not None:
            scope["route"] = partial

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # websockets are not proxied
            return
        self._label(scope)
        ctx = context.get()
        if ctx is None:
            raise AuthenticationError("a plugin route needs a tenant")
        client = self.client
        trial = client.breaker.admit("a route")  # PluginUnavailableError: 503 at once while open
        outcome: bool | None = None
        headers = [*_request_headers(scope), *client.headers(ctx).items()]
        has_body = any(name in ("content-length", "transfer-encoding") for name, _ in headers) or any(
            name == b"transfer-encoding" for name, _ in scope["headers"]
        )
        target = quote(_route_path(scope), safe=_SAFE_PATH_CHARACTERS)
        query = scope.get("query_string", b"")
        url = target + ("?" + query.decode("latin-1") if query else "")

        async def body() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _Disconnected
                chunk = message.get("body", b"")
                if chunk:
                    yield chunk
                if not message.get("more_body", False):
                    return

        started = False
        try:
            try:
                response = await client.session().request(
                    scope["method"],
                    plugin_url(client.config.url, url),
                    headers=headers,
                    data=body() if has_body else None,
                    allow_redirects=False,
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                cause = _caller_fault(exc)
                if cause is not None:
                    raise cause from None  # the caller's fault: the plugin is not to blame
                outcome = False
                raise _transport(client, exc) from None
            try:
                outcome = response.status < 500
                if response.headers.get(PROTOCOL_HEADER) != "1":
                    outcome = False
                    raise PluginAnswerError(
                        self.name, "a route", f"answered HTTP {response.status} without {PROTOCOL_HEADER}: 1"
                    )
                problem = await self._problem(response)
                if problem is not None:
                    raise problem
                await send(
                    {
                        "type": "http.response.start",
                        "status": response.status,
                        "headers": _response_headers(response.raw_headers),
                    }
                )
                started = True
                async for chunk in response.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except (aiohttp.ClientError, TimeoutError) as exc:
                outcome = False
                error = _transport(client, exc)
                if started:  # the answer began: cut the connection so the caller sees it is incomplete
                    logger.warning("remote plugin failed mid-answer", extra={"plugin": self.name, "error": str(error)})
                raise error from None
            finally:
                response.release()
        except _Disconnected:
            outcome = None
        finally:
            client.breaker.record(outcome, trial=trial)

    async def _problem(self, response: aiohttp.ClientResponse) -> Exception | None:
        """The SDK error a wire problem answer carries (so the caller gets the embedded problem), else None."""
        content_type = response.headers.get("content-type", "")
        if response.status < 400 or not content_type.startswith(PROBLEM_JSON):
            return None
        try:
            content = await read_capped(response, _MAX_PROBLEM_BYTES)
        except AnswerTooLarge:
            return PluginAnswerError(self.name, "a route", "answered a problem larger than 64 KiB")
        try:
            body = json.loads(content)
        except ValueError:
            return PluginAnswerError(self.name, "a route", "answered a problem that is not JSON")
        return decode_problem(response.status, body, plugin=self.name)


def _caller_fault(exc: BaseException) -> BaseException | None:
    """The caller's own error behind a failed send (its body passed the cap, or it went away), if any."""
    seen: BaseException | None = exc
    visited: set[int] = set()
    while seen is not None and id(seen) not in visited:  # a chain may loop back on itself
        if isinstance(seen, PayloadTooLargeError | _Disconnected):
            return seen
        visited.add(id(seen))
        seen = seen.__cause__ or seen.__context__
    return None


def _transport(client: RemoteClient, exc: BaseException) -> Exception:
    return transport_error(client.name, "a route", exc, client.config.timeout_seconds)[0]
